"""AVEL (Tian et al., ECCV 2018): the audio-visual event localization baselines, from avattn layers.

Axis legend: b batch, t segments (10), h/w the 7x7 grid, n cells (49), c visual channels (512),
a audio channels (128, VGGish), k classes (29: 28 events + background at 28).

The reference code's three models, equal to it given its weights (docs/avel.md):
  A+V-att (supervised, ``model="avel"``) and W-A+V-att (``setting="weak"``):
    v = AGVA(visual, audio)                        (the code's cell-axis audio term)
    h_a = BiLSTM(audio), h_v = BiLSTM(v)           (B, T, 256) each
    s = SegmentClassifier(ReLU([h_a ; h_v]))       (B, T, 29)
  DMRN (supervised, ``model="avel-dmrn"``): s = Linear(256, 29)(DMRN(h_v, h_a)).
  Supervised: per-segment softmax(s); weak: video probabilities softmax_k(max_t s) (MIL pooling).

The paper's other rows have no code; rebuilt from the same parts (``variant``), they are
reconstructions: A (audio BiLSTM only), V (mean over cells, visual BiLSTM), V-att (AGVA, visual
BiLSTM), A+V (mean over cells, both BiLSTMs, concatenation head).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from avattn import (
    AGVA,
    DMRN,
    BiLSTMEncoder,
    SegmentClassifier,
    SpatialAverage,
    check_label_range,
    predict_segment_classes,
    segment_cross_entropy,
    segment_soft_margin_loss,
    weak_localization_loss,
)
from examples.ave.constants import AUDIO_DIM, NUM_CLASSES
from examples.ave.inputs import check_av_inputs

from .config import LSTM_HIDDEN, AVELConfig


class AVELOutput(NamedTuple):
    """segment_logits (B, T, 29): softmax over the last axis is the reference's segment distribution."""

    segment_logits: Tensor


class AVELWeakOutput(NamedTuple):
    """segment_logits (B, T, 29): the raw segment scores (the reference predicts their argmax);
    video_probs (B, 29): softmax over classes of the pooled scores (max over t in the reference)."""

    segment_logits: Tensor
    video_probs: Tensor


class AVELWeights(NamedTuple):
    """spatial (B, T, H, W) or (B, T, N): AGVA's attention over the cells (None without AGVA)."""

    spatial: Tensor | None


class AVEL(nn.Module):
    """AVEL's models; see the module docstring. Registers only the parameters its forward uses.

    Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, 128) -> ``AVELOutput`` (supervised)
    or ``AVELWeakOutput`` (weak), plus ``AVELWeights`` when ``return_weights=True``.
    """

    def __init__(self, config: AVELConfig | None = None, *, device=None, dtype=None) -> None:
        super().__init__()
        cfg = self.config = AVELConfig() if config is None else config
        if not isinstance(cfg, AVELConfig):
            raise TypeError(f"config must be an AVELConfig, got {type(cfg).__name__}")
        kw = {"device": device, "dtype": dtype}
        self.attention = self.audio_lstm = self.visual_lstm = self.fusion = None
        if cfg.uses_agva:
            self.attention = AGVA(cfg.visual_dim, AUDIO_DIM, hidden_dim=512, attention_dim=49,
                                  audio_along_cells=cfg.agva_audio_along_cells, **kw)
        elif cfg.uses_visual:
            self.attention = SpatialAverage(cfg.visual_dim, AUDIO_DIM)
        if cfg.uses_audio:
            self.audio_lstm = BiLSTMEncoder(AUDIO_DIM, LSTM_HIDDEN, **kw)
        if cfg.uses_visual:
            self.visual_lstm = BiLSTMEncoder(cfg.visual_dim, LSTM_HIDDEN, **kw)
        if cfg.model == "avel-dmrn":
            self.fusion = DMRN(2 * LSTM_HIDDEN, num_layers=cfg.dmrn_blocks, swap_residuals=cfg.dmrn_swap_residuals, **kw)
            self.classifier = SegmentClassifier(2 * LSTM_HIDDEN, NUM_CLASSES, hidden_dim=None, **kw)
        else:
            width = 2 * LSTM_HIDDEN * (cfg.uses_audio + cfg.uses_visual)
            self.classifier = SegmentClassifier(width, NUM_CLASSES, hidden_dim=64, **kw)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's initialisation: Xavier-uniform weights for the attention layers and the head
        (A+V-att); only the output layer for DMRN. Biases and LSTMs keep PyTorch's defaults."""
        linears = [self.classifier.output]
        if self.fusion is None:
            linears += [self.classifier.hidden]
            if isinstance(self.attention, AGVA):
                a = self.attention
                linears += [a.visual_hidden, a.audio_hidden, a.visual_key, a.audio_key, a.score]
        for layer in linears:
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        cfg = self.config
        check_av_inputs(visual, audio, cfg.visual_dim)
        spatial, streams = None, []
        if self.audio_lstm is not None:
            streams.append(self.audio_lstm(audio))
        if self.visual_lstm is not None:
            v, spatial = self.attention(visual, audio, return_weights=True)
            streams.append(self.visual_lstm(v))
        if self.fusion is not None:
            audio_state, visual_state = streams
            scores = self.classifier(self.fusion(visual_state, audio_state))
        else:
            scores = self.classifier(torch.relu(torch.cat(streams, dim=-1)))  # [audio ; visual]
        if cfg.setting == "supervised":
            out = AVELOutput(scores)
        else:
            pooled = scores.amax(dim=1) if cfg.mil_pooling == "max" else scores.mean(dim=1)
            out = AVELWeakOutput(scores, pooled.softmax(dim=-1))
        return (out, AVELWeights(spatial)) if return_weights else out

    def loss(self, output: AVELOutput | AVELWeakOutput, segment_labels: Tensor, video_labels: Tensor) -> Tensor:
        """segment_labels (B, T) int (28 = background); video_labels (B,) int.

        Supervised, "reference": MultiLabelSoftMargin(softmax(segment_logits), one-hot segment labels);
        weak: MultiLabelSoftMargin(video_probs, one-hot video label) (segment labels unused).
        "cross_entropy": CE per segment; weak, CE of the pooled video distribution.
        """
        if self.config.setting == "supervised":
            if self.config.loss == "cross_entropy":
                return segment_cross_entropy(output.segment_logits, segment_labels)
            return segment_soft_margin_loss(output.segment_logits.softmax(dim=-1), segment_labels)
        if self.config.loss == "cross_entropy":
            check_label_range("video_labels", video_labels, NUM_CLASSES)  # nll_loss would skip -100 silently
            return F.nll_loss(torch.log(output.video_probs.clamp_min(1e-12)), video_labels)
        return weak_localization_loss(output.video_probs, video_labels)

    @staticmethod
    def predict(output: AVELOutput | AVELWeakOutput) -> Tensor:
        """(B, T) int64: each segment's argmax over the 29 classes (background included)."""
        return predict_segment_classes(output.segment_logits.float())

    @staticmethod
    def relevance(output: AVELOutput | AVELWeakOutput) -> Tensor:
        """(B, T) in [0, 1]: the softmax probability of each segment's predicted class."""
        return output.segment_logits.float().softmax(dim=-1).amax(dim=-1)
