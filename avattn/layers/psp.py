"""PositiveSamplePropagation: the PSP module of Zhou et al., "Positive Sample Propagation along the
Audio-Visual Event Line" (CVPR 2021).

Axis legend: b batch, t visual segments, s audio segments, e model dim (256 in PSP).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .._checks import (
    check_choice,
    check_dropout,
    check_flag,
    check_input_dtypes,
    check_positive,
    check_positive_int,
    check_same_batch_time,
    check_sequence_features,
)

PSP_VARIANTS: tuple[str, ...] = ("supervised", "weak")
_DEFAULT_THRESHOLD = {"supervised": 0.099, "weak": 0.095}


class PSPOutput(NamedTuple):
    """fused (B, T, E) = (visual + audio) / 2; visual, audio (B, T, E): the normalised streams."""

    fused: Tensor
    visual: Tensor
    audio: Tensor


class PSPWeights(NamedTuple):
    """The pruned propagation weights. visual_from_audio (B, T, T): row t (a visual segment) over
    audio segments s; audio_from_visual (B, T, T): row s (an audio segment) over visual segments t."""

    visual_from_audio: Tensor
    audio_from_visual: Tensor


def _prune(affinity: Tensor, threshold: float, renormalize: bool, eps: float) -> Tensor:
    """Row-normalise, zero the entries at or below ``threshold`` (a hard mask, no gradient), renormalise."""
    beta = affinity / (affinity.sum(dim=-1, keepdim=True) + eps)
    gamma = beta * (beta > threshold).to(beta.dtype)
    return gamma / (gamma.sum(dim=-1, keepdim=True) + eps) if renormalize else gamma


class PositiveSamplePropagation(nn.Module):
    """Positive sample propagation between a visual and an audio sequence (B, T, E).

    Four bias-free branches ``x_i = Drop(ReLU(Linear(E, E)(x)))``: ``v1, v2`` from visual, ``a1, a2``
    from audio. One all-pair affinity ``S = ReLU(v2 a1^T / sqrt(E))`` (b, t, s) serves both directions:

    - visual side: ``beta = S / (sum_s S + eps)``; ``gamma = beta * [beta > threshold]``; optionally
      ``gamma /= (sum_s gamma + eps)``; ``v' = v + gamma a2``;
    - audio side: the same on ``S^T`` (rows over visual segments); ``a' = a + gamma' v1``.

    Then ``"supervised"``: ``v_psp = LN(Drop(ReLU(Linear(E, E)(v'))))`` (bias-free, likewise audio);
    ``"weak"``: ``v_psp = LN(v')``, ``a_psp = LN(a')``. One LayerNorm (eps ``norm_eps``) serves both
    modalities. Output ``fused = (v_psp + a_psp) / 2``. Dropout (``nn.Dropout``, one module) acts six
    times in training (``"supervised"``) or four (``"weak"``), so the affinity and its pruning mask
    are computed from dropped-out features.

    This is not an attention-API call: there is no softmax anywhere. The weights are ReLU
    affinities normalised by their row sums, and entries at or below ``threshold`` are cut to zero
    (a row whose affinities are all zero propagates nothing). Since a normalised row sums to 1 over
    T entries, ``threshold`` is relative to ``1/T``: the defaults (0.099 supervised, 0.095 weak, from
    the reference code) assume T = 10 and keep roughly the above-average pairs; rescale for other T.

    ``variant`` picks the parameter set and the defaults: ``"supervised"`` renormalises after
    pruning and has the output projections ``visual_out``, ``audio_out``; ``"weak"`` does neither.
    ``renormalize`` overrides the variant's choice.

    Shapes: visual (B, T, E), audio (B, T, E) -> ``PSPOutput`` ((B, T, E) x 3), plus ``PSPWeights``
    ((B, T, T) x 2) when ``return_weights=True``.
    """

    def __init__(
        self,
        dim: int = 256,
        *,
        variant: Literal["supervised", "weak"] = "supervised",
        threshold: float | None = None,
        renormalize: bool | None = None,
        dropout: float = 0.1,
        eps: float = 1e-8,
        norm_eps: float = 1e-6,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.variant = check_choice("variant", variant, PSP_VARIANTS)
        self.threshold = check_dropout("threshold", _DEFAULT_THRESHOLD[variant] if threshold is None else threshold)
        if renormalize is not None and not isinstance(renormalize, bool):
            raise ValueError(f"renormalize must be True, False or None (the variant's choice), got {renormalize!r}")
        # nn.Dropout (no dropout_impl): training-mode draws match the reference code's, seed for seed
        self.renormalize = (variant == "supervised") if renormalize is None else renormalize
        self.eps = check_positive("eps", eps)
        kw = {"device": device, "dtype": dtype}
        self.visual_value = nn.Linear(self.dim, self.dim, bias=False, **kw)  # v1, propagated to audio
        self.visual_query = nn.Linear(self.dim, self.dim, bias=False, **kw)  # v2, rows of the affinity
        self.audio_key = nn.Linear(self.dim, self.dim, bias=False, **kw)  # a1, columns of the affinity
        self.audio_value = nn.Linear(self.dim, self.dim, bias=False, **kw)  # a2, propagated to visual
        self.visual_out = self.audio_out = None
        if variant == "supervised":
            self.visual_out = nn.Linear(self.dim, self.dim, bias=False, **kw)
            self.audio_out = nn.Linear(self.dim, self.dim, bias=False, **kw)
        self.dropout = nn.Dropout(check_dropout("dropout", dropout))
        self.norm = nn.LayerNorm(self.dim, eps=check_positive("norm_eps", norm_eps), **kw)

    def _branch(self, linear: nn.Linear, x: Tensor) -> Tensor:
        return self.dropout(torch.relu(linear(x)))

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        """Propagate the positive audio-visual pairs across the two sequences, then normalise.

        Axes: B batch, T segments (the same T for both modalities), E dim.
        Shapes: visual (B, T, E), audio (B, T, E) -> ``PSPOutput(fused, visual, audio)``, each (B, T, E).
        return_weights=True: ``(out, PSPWeights(visual_from_audio (B, T, T), audio_from_visual (B, T, T)))``,
        the pruned propagation weights.
        """
        check_flag("return_weights", return_weights)
        check_sequence_features("visual", visual, self.dim)
        check_sequence_features("audio", audio, self.dim)
        check_same_batch_time("audio", audio, "visual", visual)
        check_input_dtypes(self, visual=visual, audio=audio)
        v1, v2 = self._branch(self.visual_value, visual), self._branch(self.visual_query, visual)
        a1, a2 = self._branch(self.audio_key, audio), self._branch(self.audio_value, audio)
        affinity = F.relu(torch.einsum("bte,bse->bts", v2, a1) / self.dim**0.5)
        visual_from_audio = _prune(affinity, self.threshold, self.renormalize, self.eps)
        audio_from_visual = _prune(affinity.transpose(1, 2), self.threshold, self.renormalize, self.eps)
        visual = visual + torch.einsum("bts,bse->bte", visual_from_audio, a2)
        audio = audio + torch.einsum("bst,bte->bse", audio_from_visual, v1)
        if self.visual_out is not None:
            visual, audio = self._branch(self.visual_out, visual), self._branch(self.audio_out, audio)
        visual, audio = self.norm(visual), self.norm(audio)
        out = PSPOutput(0.5 * (visual + audio), visual, audio)
        return (out, PSPWeights(visual_from_audio, audio_from_visual)) if return_weights else out

    def extra_repr(self) -> str:
        return f"{self.dim}, variant={self.variant!r}, threshold={self.threshold}, renormalize={self.renormalize}"
