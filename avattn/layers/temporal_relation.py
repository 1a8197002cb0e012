"""InternalTemporalRelation (ITR): a projection, then L self-attention relation layers.

Axis legend: b batch, t segments, c input features, e model dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn
from torch import Tensor

from .._checks import (
    check_divisor,
    check_dropout,
    check_input_dtypes,
    check_nonnegative_int,
    check_positive_int,
    check_sequence,
    check_sequence_features,
)
from .._deprecation import renamed_attribute, renamed_keywords
from ..functional.backends import check_backend_name
from .dropout import check_dropout_impl
from .relation_layer import RelationLayer


def _one_mask(mask: Tensor | None) -> list[Tensor | None] | None:
    """The old ``key_padding_mask=mask`` as the new ``key_padding_masks=[mask]``."""
    return None if mask is None else [mask]


class InternalTemporalRelation(nn.Module):
    """``x = Linear(input_dim, dim)(x)`` (no activation), then ``num_layers`` self-attention layers.

    ``dropout_impl``: the relation layers' (``"bit"`` or ``"torch"``, see ``RelationLayer``).
    ``input_dim`` was ``in_dim``; the forward's ``key_padding_masks=[mask]`` was ``key_padding_mask=mask``.

    Shapes: x (B, T, input_dim); key_padding_masks None or [None or bool (B, T)] -> (B, T, dim).
    """

    @renamed_keywords(in_dim="input_dim")
    def __init__(
        self,
        input_dim: int,
        dim: int = 256,
        *,
        num_layers: int = 2,
        num_heads: int = 4,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
        dropout_impl: str = "bit",
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        input_dim, dim = check_positive_int("input_dim", input_dim), check_positive_int("dim", dim)
        num_layers, ffn_dim = check_nonnegative_int("num_layers", num_layers), check_positive_int("ffn_dim", ffn_dim)
        num_heads = check_divisor("num_heads", num_heads, "dim", dim)
        dropout, backend = check_dropout("dropout", dropout), check_backend_name("backend", backend)
        dropout_impl = check_dropout_impl(dropout_impl)
        kw = {"device": device, "dtype": dtype}
        self.input_dim = input_dim
        self.proj = nn.Linear(input_dim, dim, **kw)
        self.layers = nn.ModuleList(
            RelationLayer(
                dim, num_heads, ffn_dim=ffn_dim, dropout=dropout, dropout_impl=dropout_impl, backend=backend, **kw
            )
            for _ in range(num_layers)
        )

    in_dim = renamed_attribute("in_dim", "input_dim")

    @renamed_keywords(key_padding_mask=("key_padding_masks", _one_mask))
    def forward(self, x: Tensor, *, key_padding_masks: Sequence[Tensor | None] | None = None) -> Tensor:
        """Each segment related to the others of its sequence (self-attention, ``num_layers`` times).

        Axes: B batch, T segments (T >= 1), C input_dim, E dim.
        Shapes: x (B, T, C); key_padding_masks: None, or a list with one entry, the padding of x
        (the one memory source of its self-attention): None or bool (B, T), True = padded -> (B, T, E).
        """
        check_input_dtypes(self, x=x)
        check_sequence_features("x", x, self.input_dim, nonempty=True)
        if key_padding_masks is not None and len(check_sequence("key_padding_masks", key_padding_masks)) != 1:
            raise ValueError(
                "key_padding_masks must hold one entry (None or the bool (B, T) padding of x), "
                f"got {len(key_padding_masks)}"
            )
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x, [x], key_padding_masks=key_padding_masks)
        return x
