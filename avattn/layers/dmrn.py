"""DMRN: the dual multimodal residual fusion of AVEL (Tian et al., ECCV 2018).

Axis legend: b batch, t segments, e model dim (2 x the BiLSTM hidden size, 256 in AVEL).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from .._checks import check_flag, check_input_dtypes, check_positive_int, check_same_batch_time, check_sequence_features
from .._deprecation import renamed_attribute, renamed_keywords


def _transform(dim: int, device, dtype) -> nn.Sequential:
    """``Linear(E, E) -> tanh -> Linear(E, E)``; indices 0 and 2 hold the weights, as in the AVEL code."""
    kw = {"device": device, "dtype": dtype}
    return nn.Sequential(nn.Linear(dim, dim, **kw), nn.Tanh(), nn.Linear(dim, dim, **kw))


class DMRN(nn.Module):
    """Dual multimodal residual fusion of two (B, T, E) sequences, per segment:

    ``m = (U_v(h_v) + U_a(h_a)) / 2``, ``h_a' = tanh(h_a + m)``, ``h_v' = tanh(h_v + m)``; output
    ``(h_a' + h_v') / 2``. ``U_v``, ``U_a``: ``Linear(E, E) -> tanh -> Linear(E, E)``, biases on.

    ``num_layers > 1`` (formerly ``num_blocks``) repeats the update, one block per layer, with the
    same ``U_v``, ``U_a`` (shared weights, as the AVEL code does). ``swap_residuals=True`` (the AVEL
    code) then feeds the block's audio residual into the new visual state and vice versa
    (``h_v' = tanh(h_a + m)``, ``h_a' = tanh(h_v + m)``); ``swap_residuals=False`` keeps each
    modality's own residual, as the paper writes the block. With one layer (AVEL's released model)
    the output is symmetric and both orders agree.

    Shapes: visual (B, T, E), audio (B, T, E) -> (B, T, E).
    """

    @renamed_keywords(num_blocks="num_layers")
    def __init__(
        self,
        dim: int = 256,
        *,
        num_layers: int = 1,
        swap_residuals: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.swap_residuals = check_flag("swap_residuals", swap_residuals)
        self.visual_transform = _transform(self.dim, device, dtype)
        self.audio_transform = _transform(self.dim, device, dtype)

    num_blocks = renamed_attribute("num_blocks", "num_layers")

    def forward(self, visual: Tensor, audio: Tensor) -> Tensor:
        """The fused sequence ``(h_a' + h_v') / 2`` after ``num_layers`` residual updates.

        Axes: B batch, T segments, E dim.
        Shapes: visual (B, T, E), audio (B, T, E) -> (B, T, E).
        """
        check_sequence_features("visual", visual, self.dim)
        check_sequence_features("audio", audio, self.dim)
        check_same_batch_time("audio", audio, "visual", visual)
        check_input_dtypes(self, visual=visual, audio=audio)
        for _ in range(self.num_layers):
            merged = 0.5 * (self.visual_transform(visual) + self.audio_transform(audio))
            if self.swap_residuals:
                visual, audio = torch.tanh(audio + merged), torch.tanh(visual + merged)
            else:
                visual, audio = torch.tanh(visual + merged), torch.tanh(audio + merged)
        return 0.5 * (visual + audio)

    def extra_repr(self) -> str:
        return f"{self.dim}, num_layers={self.num_layers}, swap_residuals={self.swap_residuals}"
