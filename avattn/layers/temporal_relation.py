"""InternalTemporalRelation (ITR): a projection, then L self-attention relation layers.

Axis legend: b batch, t segments, c input features, e model dim.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from ._checks import check_sequence_features
from .relation_layer import RelationLayer


class InternalTemporalRelation(nn.Module):
    """``x = Linear(in_dim, dim)(x)`` (no activation), then ``num_layers`` self-attention layers.

    Shapes: x (B, T, in_dim); key_padding_mask None or bool (B, T) -> (B, T, dim).
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 256,
        *,
        num_layers: int = 2,
        num_heads: int = 4,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        kw = {"device": device, "dtype": dtype}
        self.in_dim = in_dim
        self.proj = nn.Linear(in_dim, dim, **kw)
        self.layers = nn.ModuleList(
            RelationLayer(dim, num_heads, ffn_dim=ffn_dim, dropout=dropout, backend=backend, **kw)
            for _ in range(num_layers)
        )

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None) -> Tensor:
        check_sequence_features("x", x, self.in_dim)
        x = self.proj(x)
        masks = None if key_padding_mask is None else [key_padding_mask]
        for layer in self.layers:
            x = layer(x, [x], key_padding_masks=masks)
        return x
