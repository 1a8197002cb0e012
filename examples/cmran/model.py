"""CMRAN (Xu et al., ACM MM 2020) and its ablations/baselines, built only from public avattn layers.

Axis legend: b batch, t segments (10), h/w the 7x7 grid, n cells (49), c visual channels
(512 VGG-19 / 2048 ResNet-151), a audio channels (128, VGGish), e model dim (256),
k classes (28 supervised, 29 weak).

The forward pass (Xu et al., ACM MM 2020, as the reference code computes it; docs/cmran.md):
  visual (b,t,h,w,c) -> [Linear(c,512) + ReLU + Dropout(0.2)] -> AGSCA(visual, audio) -> v (b,t,512)
  a_o = RAM_a(audio, v)   (query: audio; memory [ITR_v(v) ; q_a])
  v_o = RAM_v(v, audio)   (query: visual; memory [ITR_a(audio) ; q_v])
  O   = AudioVideoInteraction(v_o, a_o)   (f = v_o * a_o attends to [a_o ; v_o])
  head(O) -> SupervisedOutput / WeakOutput

Baselines (``arch``), composed from the same parts, each modality encoded by an ITR
(Linear(in, 256) + L self-attention layers, standing in for AVEL's LSTM):
  audio_only:        O = ITR_a(audio)
  visual_only:       O = ITR_v(mean_cells(visual))
  audio_visual:      O = ITR_v(mean_cells(visual)) * ITR_a(audio)
  audio_visual_agva: O = ITR_v(AGVA(visual, audio)) * ITR_a(audio)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from avattn import (
    AGSCA,
    AGVA,
    AttentionWeights,
    AudioVideoInteraction,
    BitDropout,
    InternalTemporalRelation,
    RelationAwareModule,
    SpatialAverage,
    SupervisedLocalizationHead,
    SupervisedOutput,
    WeakLocalizationHead,
    WeakOutput,
    check_input_dtypes,
    fused_projected_agsca,
    predict_segments,
    supervised_localization_loss,
    weak_localization_loss,
)
from examples.ave.constants import AUDIO_DIM, NUM_EVENT_CLASSES
from examples.ave.registry import count_parameters

from .config import CMRANConfig


class CMRANWeights(NamedTuple):
    """What ``forward(..., return_weights=True)`` returns besides the head output (None where absent).

    spatial: (B, T, H, W) attention over the grid (AGSCA's M_s, or AGVA's alpha);
    channel: (B, T, C') AGSCA's channel gates M_c;
    audio_relation / video_relation: the relation-aware modules' ``AttentionWeights``
    ((B, heads, T, memory length); for "cmra" the memory is [ITR(other) ; own query], 2T steps);
    interaction: the AV-interaction ``AttentionWeights`` (memory [a_o ; v_o]).
    """

    spatial: Tensor | None
    channel: Tensor | None
    audio_relation: AttentionWeights | None
    video_relation: AttentionWeights | None
    interaction: AttentionWeights | None


class CMRAN(nn.Module):
    """The full model; see the module docstring. Registers only the parameters its forward uses.

    Shapes: visual (B, T, H, W, C_v) or (B, T, N, C_v) float; audio (B, T, 128) float
    -> ``SupervisedOutput`` ((B, T), (B, 28)) or ``WeakOutput`` ((B, T), (B, 29) x 3),
    plus ``CMRANWeights`` when ``return_weights=True``.

    ``fused_visual`` (default True): the pre-projection + AGSCA run as one fused function
    (``avattn.layers.fused_visual``) with the same outputs and gradients; False runs the plain layers.
    """

    fused_visual: bool = True

    def __init__(self, config: CMRANConfig | None = None, *, device=None, dtype=None) -> None:
        super().__init__()
        cfg = self.config = CMRANConfig() if config is None else config
        if not isinstance(cfg, CMRANConfig):
            raise TypeError(f"config must be a CMRANConfig, got {type(cfg).__name__}")
        kw = {"device": device, "dtype": dtype}
        e = cfg.d_model
        drop_kw = {"dropout": cfg.dropout, "dropout_impl": cfg.dropout_impl}
        layer_kw = {"num_heads": cfg.num_heads, "ffn_dim": cfg.ffn_dim, **drop_kw, "backend": cfg.backend, **kw}

        # Visual pre-projection and visual attention (none for audio_only).
        self.visual_proj = None
        self.visual_attention = None
        visual_dim = cfg.visual_dim
        if cfg.uses_visual:
            if cfg.visual_proj:
                self.visual_proj = nn.Sequential(
                    nn.Linear(cfg.visual_dim, cfg.visual_proj_dim, **kw), nn.ReLU(), BitDropout(cfg.visual_dropout)
                )
                visual_dim = cfg.visual_proj_dim
            kind = {"audio_visual_agva": "agva", "audio_visual": "average", "visual_only": "average"}.get(
                cfg.arch, cfg.visual_attention
            )
            if kind == "agsca":
                self.visual_attention = AGSCA(visual_dim, AUDIO_DIM, **kw)
            elif kind == "agva":
                self.visual_attention = AGVA(visual_dim, AUDIO_DIM, audio_along_cells=cfg.agva_audio_along_cells, **kw)
            else:
                self.visual_attention = SpatialAverage(visual_dim, AUDIO_DIM)
        self.visual_dim_in = visual_dim  # channels reaching the temporal part

        # Temporal part.
        self.audio_relation = self.video_relation = self.interaction = None
        self.audio_encoder = self.video_encoder = None
        if cfg.arch == "cmran":
            self.audio_relation = RelationAwareModule(
                AUDIO_DIM, visual_dim, e, variant=cfg.cmra, num_layers=cfg.itr_layers or 0, **layer_kw
            )
            self.video_relation = RelationAwareModule(
                visual_dim, AUDIO_DIM, e, variant=cfg.cmra, num_layers=cfg.itr_layers or 0, **layer_kw
            )
            self.interaction = AudioVideoInteraction(
                e, cfg.interaction_heads or 1, variant=cfg.interaction, **drop_kw, backend=cfg.backend, **kw
            )
        else:
            enc_kw = {"num_layers": cfg.itr_layers, **layer_kw}
            if cfg.uses_audio:
                self.audio_encoder = InternalTemporalRelation(AUDIO_DIM, e, **enc_kw)
            if cfg.uses_visual:
                self.video_encoder = InternalTemporalRelation(visual_dim, e, **enc_kw)

        if cfg.setting == "supervised":
            self.head = SupervisedLocalizationHead(e, NUM_EVENT_CLASSES, **kw)
        else:
            self.head = WeakLocalizationHead(e, NUM_EVENT_CLASSES + 1, **kw)
        if cfg.init == "reference":
            copy_first_itr_layer(self)

    def _check_inputs(self, visual: object, audio: object) -> None:
        cfg = self.config
        expect_v = f"(B, T, H, W, {cfg.visual_dim}) or (B, T, N, {cfg.visual_dim})"
        if not isinstance(visual, Tensor) or not visual.is_floating_point() or visual.dim() not in (4, 5):
            got = tuple(visual.shape) if isinstance(visual, Tensor) else type(visual).__name__
            raise ValueError(f"visual must be a float tensor {expect_v}, got {got}")
        if visual.shape[-1] != cfg.visual_dim:
            raise ValueError(
                f"visual must have shape {expect_v} (features={cfg.features!r}), got {tuple(visual.shape)}"
            )
        if not isinstance(audio, Tensor) or not audio.is_floating_point() or audio.dim() != 3:
            got = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
            raise ValueError(f"audio must be a float tensor (B, T, {AUDIO_DIM}), got {got}")
        if audio.shape[-1] != AUDIO_DIM or audio.shape[:2] != visual.shape[:2]:
            raise ValueError(
                f"audio must have shape (B, T, {AUDIO_DIM}) = {tuple(visual.shape[:2]) + (AUDIO_DIM,)} "
                f"(B, T of visual), got {tuple(audio.shape)}"
            )

    def encode_visual(self, visual: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(B, T, H, W, C_v) -> (B, T, 512) segment features, spatial map, channel gates."""
        if self.fused_visual and self.visual_proj is not None and isinstance(self.visual_attention, AGSCA):
            linear, _, dropout = self.visual_proj
            return fused_projected_agsca(
                visual, audio, linear, self.visual_attention, dropout=dropout.p, training=self.training
            )
        if self.visual_proj is not None:
            visual = self.visual_proj(visual)
        out, weights = self.visual_attention(visual, audio, return_weights=True)
        if isinstance(self.visual_attention, AGSCA):
            return out, weights.spatial, weights.channel
        return out, weights, None

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        self._check_inputs(visual, audio)
        check_input_dtypes(self, visual=visual, audio=audio)
        spatial = channel = maps_a = maps_v = maps_i = None
        v = None
        if self.visual_attention is not None:
            v, spatial, channel = self.encode_visual(visual, audio)
        if self.config.arch == "cmran":
            if return_weights:
                a_o, maps_a = self.audio_relation(audio, v, return_weights=True)
                v_o, maps_v = self.video_relation(v, audio, return_weights=True)
                fused, maps_i = self.interaction(v_o, a_o, return_weights=True)
            else:
                a_o = self.audio_relation(audio, v)
                v_o = self.video_relation(v, audio)
                fused = self.interaction(v_o, a_o)
        else:
            parts = []
            if self.video_encoder is not None:
                parts.append(self.video_encoder(v))
            if self.audio_encoder is not None:
                parts.append(self.audio_encoder(audio))
            fused = parts[0] if len(parts) == 1 else parts[0] * parts[1]
        out = self.head(fused)
        if not return_weights:
            return out
        return out, CMRANWeights(spatial, channel, maps_a, maps_v, maps_i)

    def loss(self, output: SupervisedOutput | WeakOutput, segment_labels: Tensor, video_labels: Tensor) -> Tensor:
        """The setting's training loss. segment_labels (B, T) int (28 = background); video_labels (B,) int.

        Supervised: BCE(event logits, is_event) + CE(class logits, video class), 1:1 (segment
        labels used). Weak: MultiLabelSoftMargin(video scores, one-hot video label) (segment labels unused).
        """
        if self.config.setting == "supervised":
            return supervised_localization_loss(output.event_logits, output.class_logits, segment_labels, video_labels)
        scores = output.video_scores if self.config.weak_loss_on == "scores" else output.video_logits
        return weak_localization_loss(scores, video_labels)

    @staticmethod
    def predict(output: SupervisedOutput | WeakOutput) -> Tensor:
        """(B, T) int64 segment labels: event if sigmoid(s_t) > 0.5 with the argmax category, else 28."""
        return predict_segments(output.event_logits.float(), output.class_logits.float())

    @staticmethod
    def relevance(output: SupervisedOutput | WeakOutput) -> Tensor:
        """(B, T) in [0, 1]: each segment's event probability sigmoid(s_t)."""
        return torch.sigmoid(output.event_logits.float())


def copy_first_itr_layer(model: nn.Module) -> None:
    """The reference code's quirk (``init="reference"``): it builds each ITR's layers as deep copies of
    one template layer, so they start identical. Here every ITR's later layers become copies of its first."""
    for itr in model.modules():
        if isinstance(itr, InternalTemporalRelation):
            for layer in itr.layers[1:]:
                layer.load_state_dict(itr.layers[0].state_dict())


def describe(model: CMRAN) -> str:
    """One line: the architecture and its parameter count."""
    c = model.config
    parts = [f"arch={c.arch}", f"setting={c.setting}", f"features={c.features}"]
    if c.arch == "cmran":
        parts += [f"cmra={c.cmra}", f"visual_attention={c.visual_attention}", f"interaction={c.interaction}"]
    if c.itr_layers is not None:
        parts.append(f"itr_layers={c.itr_layers}")
    n = count_parameters(model)
    return f"CMRAN({', '.join(parts)}): {n:,} parameters ({n / 1e6:.2f} M)"
