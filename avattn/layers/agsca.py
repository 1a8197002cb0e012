"""AGSCA: audio-guided channel attention, then audio-guided spatial attention (CMRAN, Eq. 1-3).

Axis legend: b batch, t segments, n spatial cells (H*W), c visual channels, a audio channels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
from einops import rearrange
from torch import Tensor

from .._checks import (
    check_divisor,
    check_flag,
    check_input_dtypes,
    check_positive_int,
    check_same_batch_time,
    check_sequence_features,
    check_visual_map,
)


class AGSCAWeights(NamedTuple):
    """channel: (B, T, C) gates in (0, 1) (the map is applied as ``v * (channel + 1)``);
    spatial: (B, T, H, W) or (B, T, N) softmax weights over the cells."""

    channel: Tensor | None
    spatial: Tensor | None


def flatten_cells(visual: Tensor) -> Tensor:
    """(B, T, H, W, C) or (B, T, N, C) -> (B, T, N, C), a view where the layout allows."""
    return rearrange(visual, "b t ... c -> b t (...) c")


class AudioGuidedChannelAttention(nn.Module):
    """Channel gates from audio-visual agreement: ``v_c = v * (M_c + 1)``.

    ``g = mean_cells(ReLU(W_a a) * ReLU(W_v v))``, ``M_c = sigmoid(W_2 ReLU(W_1 g))``.

    Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A) -> same shape as visual.
    """

    def __init__(
        self, visual_dim: int = 512, audio_dim: int = 128, *, reduction: int = 2, device=None, dtype=None
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        visual_dim, audio_dim = check_positive_int("visual_dim", visual_dim), check_positive_int("audio_dim", audio_dim)
        reduction = check_divisor("reduction", reduction, "visual_dim", visual_dim)
        self.visual_dim, self.audio_dim = visual_dim, audio_dim
        self.audio_proj = nn.Linear(audio_dim, visual_dim, **kw)
        self.visual_proj = nn.Linear(visual_dim, visual_dim, **kw)
        self.squeeze = nn.Linear(visual_dim, visual_dim // reduction, **kw)
        self.excite = nn.Linear(visual_dim // reduction, visual_dim, **kw)

    def gates(self, visual: Tensor, audio: Tensor) -> Tensor:
        """M_c: (B, T, C). ``mean_n(a * v_n) = a * mean_n(v_n)`` saves a pass over the map."""
        check_input_dtypes(self, visual=visual, audio=audio)
        check_visual_map("visual", visual, self.visual_dim)
        check_sequence_features("audio", audio, self.audio_dim)
        check_same_batch_time("audio", audio, "visual", visual)
        joint = torch.relu(self.audio_proj(audio)) * torch.relu(self.visual_proj(flatten_cells(visual))).mean(dim=2)
        return torch.sigmoid(self.excite(torch.relu(self.squeeze(joint))))

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        """Scale each visual channel by ``M_c + 1``, its agreement with the audio.

        Axes: B batch, T segments, H x W (or N) spatial cells, C visual_dim, A audio_dim.
        Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A) -> the visual's shape.
        return_weights=True: ``(out, gates)``, the gates M_c (B, T, C) in (0, 1).
        """
        check_flag("return_weights", return_weights)
        gates = self.gates(visual, audio)
        scale = (gates + 1).unsqueeze(2)
        out = visual * (scale.unsqueeze(2) if visual.dim() == 5 else scale)
        return (out, gates) if return_weights else out


class AudioGuidedSpatialAttention(nn.Module):
    """Audio-guided pooling over cells: ``x_n = tanh(w^T (ReLU(U_v v_n) * ReLU(U_a a)))``,
    ``M_s = softmax_n x``, output ``sum_n M_s[n] v_n``.

    Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A) -> (B, T, C).
    """

    def __init__(
        self, visual_dim: int = 512, audio_dim: int = 128, *, hidden_dim: int = 256, device=None, dtype=None
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        visual_dim, audio_dim = check_positive_int("visual_dim", visual_dim), check_positive_int("audio_dim", audio_dim)
        hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.visual_dim, self.audio_dim = visual_dim, audio_dim
        self.visual_proj = nn.Linear(visual_dim, hidden_dim, **kw)
        self.audio_proj = nn.Linear(audio_dim, hidden_dim, **kw)
        self.score = nn.Linear(hidden_dim, 1, **kw)

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        """Pool the visual cells of each segment with audio-guided softmax weights.

        Axes: B batch, T segments, H x W (or N) spatial cells, C visual_dim, A audio_dim.
        Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A) -> (B, T, C).
        return_weights=True: ``(out, weights)``, the softmax over cells M_s (B, T, H, W) or (B, T, N).
        """
        check_flag("return_weights", return_weights)
        check_input_dtypes(self, visual=visual, audio=audio)
        check_visual_map("visual", visual, self.visual_dim)
        check_sequence_features("audio", audio, self.audio_dim)
        check_same_batch_time("audio", audio, "visual", visual)
        cells = flatten_cells(visual)
        joint = torch.relu(self.visual_proj(cells)) * torch.relu(self.audio_proj(audio)).unsqueeze(2)
        weights = torch.tanh(self.score(joint)).squeeze(-1).softmax(dim=-1)  # (b, t, n)
        out = torch.einsum("btn,btnc->btc", weights, cells)
        return (out, weights.view(visual.shape[:-1])) if return_weights else out


class AGSCA(nn.Module):
    """Audio-guided spatial-channel attention: channel attention, then spatial attention.

    Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A) -> (B, T, C), and
    ``AGSCAWeights`` when ``return_weights=True``.
    """

    def __init__(
        self,
        visual_dim: int = 512,
        audio_dim: int = 128,
        *,
        hidden_dim: int = 256,
        reduction: int = 2,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.channel = AudioGuidedChannelAttention(visual_dim, audio_dim, reduction=reduction, **kw)
        self.spatial = AudioGuidedSpatialAttention(visual_dim, audio_dim, hidden_dim=hidden_dim, **kw)

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        """Channel attention, then spatial attention on the gated map: one feature per segment.

        Axes: B batch, T segments, H x W (or N) spatial cells, C visual_dim, A audio_dim.
        Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A) -> (B, T, C).
        return_weights=True: ``(out, AGSCAWeights(channel (B, T, C), spatial (B, T, H, W) or (B, T, N)))``.
        """
        check_flag("return_weights", return_weights)
        check_input_dtypes(self, visual=visual, audio=audio)
        gated, channel = self.channel(visual, audio, return_weights=True)
        out, spatial = self.spatial(gated, audio, return_weights=True)
        return (out, AGSCAWeights(channel, spatial)) if return_weights else out
