"""PSP (Zhou et al., CVPR 2021): positive sample propagation, from avattn layers.

Axis legend: b batch, t segments (10), h/w the 7x7 grid, n cells (49), c visual channels (512),
a audio channels (128, VGGish), e model dim (256), k classes (29: 28 events + background at 28).

The reference code's two models, equal to it given its weights (docs/psp.md):
  supervised:
    g = fa(audio)                                  two bias-free linears 128 -> 256 -> 128, no activation
    v = fv(AGVA(visual, g))                        the AVEL attention guided by g; 512 -> 256 -> 128 likewise
    h_a = BiLSTM(g), h_v = BiLSTM(v)               (B, T, 256) each
    f, v_psp, a_psp = PSP(h_v, h_a)                supervised variant, tau = 0.099
    s = SegmentClassifier(f)                       bias-free 256 -> 64 -> 29; softmax per segment
  weak: no fa (raw audio guides AGVA and feeds the audio BiLSTM); v = Linear(512, 128)(AGVA(visual,
    audio)) with a bias; PSP's weak variant (tau = 0.095); the temporal weighting head gives the
    weighted segment scores s' and the video probabilities softmax_k(mean_t s').
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from avattn import (
    AGVA,
    BiLSTMEncoder,
    PositiveSamplePropagation,
    SegmentClassifier,
    TemporalWeightingHead,
    avps_loss,
    avps_target,
    check_label_range,
    predict_segment_classes,
    segment_cross_entropy,
    soft_target_bce_loss,
)
from examples.ave.constants import AUDIO_DIM, NUM_CLASSES
from examples.ave.inputs import check_av_inputs

from .config import DIM, PSPConfig


class PSPSupervisedOutput(NamedTuple):
    """segment_logits (B, T, 29): softmax over the last axis is the reference's segment distribution;
    visual, audio (B, T, 256): PSP's normalised streams, which the AVPS loss compares."""

    segment_logits: Tensor
    visual: Tensor
    audio: Tensor


class PSPWeakOutput(NamedTuple):
    """segment_logits (B, T, 29): the weighted scores s'_t (the reference predicts argmax softmax(s'_t));
    video_probs (B, 29): softmax over classes of mean_t s'_t."""

    segment_logits: Tensor
    video_probs: Tensor


class PSPModelWeights(NamedTuple):
    """spatial (B, T, H, W) or (B, T, N): AGVA's attention; visual_from_audio, audio_from_visual (B, T, T):
    PSP's pruned propagation weights (rows: the receiving segment)."""

    spatial: Tensor
    visual_from_audio: Tensor
    audio_from_visual: Tensor


def _two_linears(d_in: int, kw: dict) -> nn.Sequential:
    """``Linear(d_in, 256) -> Linear(256, 128)``, bias-free, nothing in between (the reference's fa / fv)."""
    return nn.Sequential(nn.Linear(d_in, 256, bias=False, **kw), nn.Linear(256, 128, bias=False, **kw))


class PSP(nn.Module):
    """PSP; see the module docstring. Registers only the parameters its forward uses.

    Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, 128) -> ``PSPSupervisedOutput`` or
    ``PSPWeakOutput``, plus ``PSPModelWeights`` when ``return_weights=True``.
    """

    def __init__(self, config: PSPConfig | None = None, *, device=None, dtype=None) -> None:
        super().__init__()
        cfg = self.config = PSPConfig() if config is None else config
        if not isinstance(cfg, PSPConfig):
            raise TypeError(f"config must be a PSPConfig, got {type(cfg).__name__}")
        kw = {"device": device, "dtype": dtype}
        weak = cfg.setting == "weak"
        self.audio_projection = None if weak else _two_linears(AUDIO_DIM, kw)
        self.visual_projection = nn.Linear(cfg.visual_dim, 128, **kw) if weak else _two_linears(cfg.visual_dim, kw)
        self.attention = AGVA(cfg.visual_dim, AUDIO_DIM, hidden_dim=512, attention_dim=49, audio_along_cells=True, **kw)
        self.audio_lstm = BiLSTMEncoder(128, 128, **kw)
        self.visual_lstm = BiLSTMEncoder(128, 128, **kw)
        self.psp = PositiveSamplePropagation(DIM, variant=cfg.setting, threshold=cfg.threshold, dropout=cfg.dropout, **kw)
        self.classifier = SegmentClassifier(DIM, NUM_CLASSES, hidden_dim=64, bias=False, **kw)
        self.weighting = TemporalWeightingHead(NUM_CLASSES, **kw) if weak else None
        self._stale_target: Tensor | None = None  # avps_target="stale": the reference loader's buffer
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's initialisation: Xavier-uniform weights for AGVA, PSP's branches and the head;
        PyTorch's defaults elsewhere (projections, weighting, LSTMs, LayerNorm, biases)."""
        a, p = self.attention, self.psp
        linears = [a.visual_hidden, a.audio_hidden, a.visual_key, a.audio_key, a.score,
                   p.visual_value, p.visual_query, p.audio_key, p.audio_value,
                   self.classifier.hidden, self.classifier.output]
        if p.visual_out is not None:
            linears += [p.visual_out, p.audio_out]
        for layer in linears:
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        check_av_inputs(visual, audio, self.config.visual_dim)
        guide = audio if self.audio_projection is None else self.audio_projection(audio)
        attended, spatial = self.attention(visual, guide, return_weights=True)
        v = self.visual_lstm(self.visual_projection(attended))
        a = self.audio_lstm(guide)
        fused, prop = self.psp(v, a, return_weights=True)
        scores = self.classifier(fused.fused)
        if self.weighting is None:
            out = PSPSupervisedOutput(scores, fused.visual, fused.audio)
        else:
            weighted = self.weighting(scores)
            out = PSPWeakOutput(weighted.segment_logits, weighted.video_probs)
        if return_weights:
            return out, PSPModelWeights(spatial, prop.visual_from_audio, prop.audio_from_visual)
        return out

    def avps_targets(self, segment_labels: Tensor, dtype: torch.dtype) -> Tensor:
        """The AVPS targets of a batch (B, T): ``avps_target``, or with avps_target="stale" the reference
        loader's buffer, one row per batch slot, where each video only overwrites its event segments."""
        target = avps_target(segment_labels, dtype=dtype)
        if self.config.avps_target == "clean":
            return target
        b, t = target.shape
        buf = self._stale_target
        if buf is None or buf.shape[1] != t or buf.device != target.device or buf.dtype != dtype:
            buf = target.new_zeros(b, t)
        if buf.shape[0] < b:
            buf = torch.cat([buf, target.new_zeros(b - buf.shape[0], t)])
        buf = buf.clone()
        buf[:b] = torch.where(target > 0, target, buf[:b])
        self._stale_target = buf
        return buf[:b].clone()

    def extra_training_state(self) -> dict:
        """What resuming needs beyond the weights: avps_target="stale"'s buffer (None until used), on the CPU."""
        return {"stale_target": None if self._stale_target is None else self._stale_target.cpu()}

    def load_extra_training_state(self, state: dict) -> None:
        target = state.get("stale_target")
        self._stale_target = None if target is None else target.to(self.classifier.output.weight.device)

    def loss(self, output: PSPSupervisedOutput | PSPWeakOutput, segment_labels: Tensor, video_labels: Tensor) -> Tensor:
        """segment_labels (B, T) int (28 = background); video_labels (B,) int.

        Supervised: CE(segment_logits, segment labels) + avps_weight * AVPS(visual, audio, target).
        Weak: BCE(video_probs, one-hot video label) (the reference's soft targets are not in the AVE release).
        """
        cfg = self.config
        if cfg.setting == "weak":
            check_label_range("video_labels", video_labels, NUM_CLASSES)
            target = F.one_hot(video_labels.long(), NUM_CLASSES).to(output.video_probs.dtype)
            return soft_target_bce_loss(output.video_probs, target)
        loss = segment_cross_entropy(output.segment_logits, segment_labels)
        if cfg.avps_weight:
            target = self.avps_targets(segment_labels, output.visual.dtype)
            loss = loss + cfg.avps_weight * avps_loss(output.visual, output.audio, target)
        return loss

    @staticmethod
    def predict(output: PSPSupervisedOutput | PSPWeakOutput) -> Tensor:
        """(B, T) int64: each segment's argmax over the 29 classes (background included)."""
        return predict_segment_classes(output.segment_logits.float())

    @staticmethod
    def relevance(output: PSPSupervisedOutput | PSPWeakOutput) -> Tensor:
        """(B, T) in [0, 1]: the softmax probability of each segment's predicted class."""
        return output.segment_logits.float().softmax(dim=-1).amax(dim=-1)
