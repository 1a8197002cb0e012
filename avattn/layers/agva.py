"""AGVA: audio-guided visual attention of Tian et al. (ECCV 2018), the AVEL baseline.

Axis legend: b batch, t segments, n spatial cells, c visual channels, k attention hidden size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from .._checks import (
    check_flag,
    check_input_dtypes,
    check_positive_int,
    check_same_batch_time,
    check_sequence_features,
    check_tensor,
    check_visual_map,
)
from .agsca import flatten_cells


class AGVA(nn.Module):
    """``z_n = w^T tanh(W_v h_v,n + W_g h_a)``, ``alpha = softmax_n z``, output ``sum_n alpha_n v_n``.

    ``h_v = ReLU(Linear(C, hidden)(v))``, ``h_a = ReLU(Linear(A, hidden)(a))``; ``W_v, W_g, w``
    are bias-free. ``audio_along_cells=True`` reproduces the AVEL code, which adds ``W_g h_a``
    (length k) along the cell axis; it needs ``k == number of cells``.

    Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A) -> (B, T, C)
    (and the weights (B, T, H, W) or (B, T, N) when ``return_weights=True``).
    """

    def __init__(
        self,
        visual_dim: int = 512,
        audio_dim: int = 128,
        *,
        hidden_dim: int = 512,
        attention_dim: int = 49,
        audio_along_cells: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        visual_dim, audio_dim = check_positive_int("visual_dim", visual_dim), check_positive_int("audio_dim", audio_dim)
        hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        attention_dim = check_positive_int("attention_dim", attention_dim)
        audio_along_cells = check_flag("audio_along_cells", audio_along_cells)
        self.visual_dim, self.audio_dim = visual_dim, audio_dim
        self.attention_dim, self.audio_along_cells = attention_dim, audio_along_cells
        self.visual_hidden = nn.Linear(visual_dim, hidden_dim, **kw)
        self.audio_hidden = nn.Linear(audio_dim, hidden_dim, **kw)
        self.visual_key = nn.Linear(hidden_dim, attention_dim, bias=False, **kw)
        self.audio_key = nn.Linear(hidden_dim, attention_dim, bias=False, **kw)
        self.score = nn.Linear(attention_dim, 1, bias=False, **kw)

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        """Pool the raw visual cells of each segment with audio-guided softmax weights.

        Axes: B batch, T segments, H x W (or N) spatial cells, C visual_dim, A audio_dim.
        Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A) -> (B, T, C).
        return_weights=True: ``(out, weights)``, the softmax over cells alpha (B, T, H, W) or (B, T, N).
        """
        check_flag("return_weights", return_weights)
        check_input_dtypes(self, visual=visual, audio=audio)
        check_visual_map("visual", visual, self.visual_dim)
        check_sequence_features("audio", audio, self.audio_dim)
        check_same_batch_time("audio", audio, "visual", visual)
        cells = flatten_cells(visual)
        if self.audio_along_cells and cells.shape[2] != self.attention_dim:
            raise ValueError(
                f"audio_along_cells=True needs attention_dim == number of cells, got attention_dim="
                f"{self.attention_dim} and visual {tuple(visual.shape)} ({cells.shape[2]} cells)"
            )
        keys = self.visual_key(torch.relu(self.visual_hidden(cells)))  # (b, t, n, k)
        audio_key = self.audio_key(torch.relu(self.audio_hidden(audio)))  # (b, t, k)
        audio_key = audio_key.unsqueeze(-1) if self.audio_along_cells else audio_key.unsqueeze(2)
        weights = self.score(torch.tanh(keys + audio_key)).squeeze(-1).softmax(dim=-1)  # (b, t, n)
        out = torch.einsum("btn,btnc->btc", weights, cells)
        return (out, weights.view(visual.shape[:-1])) if return_weights else out


class SpatialAverage(nn.Module):
    """The "without AGSCA" ablation: mean over cells. Same call signature as AGSCA and AGVA.

    Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A), unused -> (B, T, C).
    No parameters and the audio unused: its shape is checked (a tensor (B, T, A)), not its dtype.
    """

    def __init__(self, visual_dim: int = 512, audio_dim: int = 128, *, device=None, dtype=None) -> None:
        super().__init__()
        visual_dim, audio_dim = check_positive_int("visual_dim", visual_dim), check_positive_int("audio_dim", audio_dim)
        self.visual_dim, self.audio_dim = visual_dim, audio_dim

    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        """The mean over cells; the audio is only checked, so that AGSCA and AGVA can be swapped in.

        Axes: B batch, T segments, H x W (or N) spatial cells, C visual_dim, A audio_dim.
        Shapes: visual (B, T, H, W, C) or (B, T, N, C); audio (B, T, A), any dtype -> (B, T, C).
        return_weights=True: ``(out, None)``: no weights, as the call signature of AGSCA and AGVA asks.
        """
        check_flag("return_weights", return_weights)
        check_visual_map("visual", visual, self.visual_dim)
        check_tensor("audio", audio, f"(B, T, {self.audio_dim})")
        if audio.dim() != 3 or audio.shape[-1] != self.audio_dim:
            raise ValueError(f"audio must have shape (B, T, {self.audio_dim}), got {tuple(audio.shape)}")
        check_same_batch_time("audio", audio, "visual", visual)
        out = flatten_cells(visual).mean(dim=2)
        return (out, None) if return_weights else out
