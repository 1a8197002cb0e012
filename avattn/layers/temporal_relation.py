"""InternalTemporalRelation (ITR): a projection, then L self-attention relation layers.

Axis legend: b batch, t segments, c input features, e model dim.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from ._checks import (
    check_backend,
    check_divisor,
    check_dropout,
    check_input_dtypes,
    check_nonnegative_int,
    check_positive_int,
    check_sequence_features,
)
from .dropout import check_dropout_impl
from .relation_layer import RelationLayer


class InternalTemporalRelation(nn.Module):
    """``x = Linear(in_dim, dim)(x)`` (no activation), then ``num_layers`` self-attention layers.

    ``dropout_impl``: the relation layers' (``"torch"`` or ``"bit"``, see ``RelationLayer``).

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
        dropout_impl: str = "torch",
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        in_dim, dim = check_positive_int("in_dim", in_dim), check_positive_int("dim", dim)
        num_layers, ffn_dim = check_nonnegative_int("num_layers", num_layers), check_positive_int("ffn_dim", ffn_dim)
        num_heads = check_divisor("num_heads", num_heads, "dim", dim)
        dropout, backend = check_dropout("dropout", dropout), check_backend(backend)
        dropout_impl = check_dropout_impl(dropout_impl)
        kw = {"device": device, "dtype": dtype}
        self.in_dim = in_dim
        self.proj = nn.Linear(in_dim, dim, **kw)
        self.layers = nn.ModuleList(
            RelationLayer(
                dim, num_heads, ffn_dim=ffn_dim, dropout=dropout, dropout_impl=dropout_impl, backend=backend, **kw
            )
            for _ in range(num_layers)
        )

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None) -> Tensor:
        check_input_dtypes(self, x=x)
        check_sequence_features("x", x, self.in_dim, nonempty=True)
        x = self.proj(x)
        masks = None if key_padding_mask is None else [key_padding_mask]
        for layer in self.layers:
            x = layer(x, [x], key_padding_masks=masks)
        return x
