"""RelationAwareModule (CMRAN Eq. 4): the other modality's ITR as memory, then CMRA.

Axis legend: b batch, t segments, e model dim.
"""

from __future__ import annotations

from typing import Literal

import torch.nn as nn
from torch import Tensor

from ._checks import (
    check_backend,
    check_divisor,
    check_dropout,
    check_input_dtypes,
    check_nonnegative_int,
    check_positive_int,
    check_same_batch_time,
    check_sequence_features,
)
from .dropout import check_dropout_impl
from .relation_layer import RelationLayer
from .temporal_relation import InternalTemporalRelation

CMRAVariant = Literal["cmra", "self", "co", "feature_concat", "none"]
CMRA_VARIANTS: tuple[str, ...] = ("cmra", "self", "co", "feature_concat", "none")


class RelationAwareModule(nn.Module):
    """One modality's relation-aware branch. ``q = Linear(query_dim, dim)(x)``, then by variant:

    - ``"cmra"``: ``RelationLayer(q, [ITR(other), q])`` (memory joined in time, other first)
    - ``"co"``: ``RelationLayer(q, [ITR(other)])``; ``"self"``: ``RelationLayer(q, [q])``
    - ``"feature_concat"`` (CMRA-F): memory ``[ITR(other), q]`` joined along features
    - ``"none"``: ``q`` alone.

    Only the parts a variant uses are built. ``dropout_impl``: the relation layers' (see ``RelationLayer``). Shapes: x (B, T, query_dim),
    other (B, T, other_dim) -> (B, T, dim).
    """

    def __init__(
        self,
        query_dim: int,
        other_dim: int,
        dim: int = 256,
        *,
        variant: CMRAVariant = "cmra",
        itr_layers: int = 2,
        num_heads: int = 4,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
        dropout_impl: str = "torch",
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if variant not in CMRA_VARIANTS:
            raise ValueError(f"variant must be one of {CMRA_VARIANTS}, got {variant!r}")
        query_dim, other_dim = check_positive_int("query_dim", query_dim), check_positive_int("other_dim", other_dim)
        dim, ffn_dim = check_positive_int("dim", dim), check_positive_int("ffn_dim", ffn_dim)
        itr_layers = check_nonnegative_int("itr_layers", itr_layers)
        num_heads = check_divisor("num_heads", num_heads, "dim", dim)
        dropout, backend = check_dropout("dropout", dropout), check_backend(backend)
        dropout_impl = check_dropout_impl(dropout_impl)
        kw = {"device": device, "dtype": dtype}
        self.variant, self.query_dim, self.other_dim = variant, query_dim, other_dim
        self.query_proj = nn.Linear(query_dim, dim, **kw)
        self.itr = None
        if variant in ("cmra", "co", "feature_concat"):
            self.itr = InternalTemporalRelation(
                other_dim, dim, num_layers=itr_layers, num_heads=num_heads, ffn_dim=ffn_dim,
                dropout=dropout, dropout_impl=dropout_impl, backend=backend, **kw,
            )
        self.relation = None
        if variant != "none":
            layout = "feature" if variant == "feature_concat" else "time"
            self.relation = RelationLayer(
                dim, num_heads, ffn_dim=ffn_dim, dropout=dropout, memory_layout=layout, dropout_impl=dropout_impl,
                backend=backend, **kw,
            )

    def memory(self, q: Tensor, other: Tensor) -> list[Tensor]:
        if self.variant == "self":
            return [q]
        if self.variant == "co":
            return [self.itr(other)]
        return [self.itr(other), q]

    def forward(self, x: Tensor, other: Tensor, *, return_weights: bool = False):
        check_input_dtypes(self, x=x, other=other)
        check_sequence_features("x", x, self.query_dim, nonempty=True)
        check_sequence_features("other", other, self.other_dim)
        check_same_batch_time("other", other, "x", x)
        q = self.query_proj(x)
        if self.relation is None:
            return (q, None) if return_weights else q
        return self.relation(q, self.memory(q, other), return_weights=return_weights)
