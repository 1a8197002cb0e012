"""RelationAwareModule (CMRAN Eq. 4): the other modality's ITR as memory, then CMRA.

Axis legend: b batch, t segments, e model dim.
"""

from __future__ import annotations

from typing import Literal

import torch.nn as nn
from torch import Tensor

from .._checks import (
    check_choice,
    check_divisor,
    check_dropout,
    check_flag,
    check_input_dtypes,
    check_nonnegative_int,
    check_positive_int,
    check_same_batch_time,
    check_sequence_features,
)
from .._deprecation import renamed_attribute, renamed_keywords
from ..functional.backends import check_backend_name
from .dropout import check_dropout_impl
from .relation_layer import RelationLayer
from .temporal_relation import InternalTemporalRelation

CMRAVariant = Literal["cmra", "self", "co", "feature_concat", "none"]
CMRA_VARIANTS: tuple[str, ...] = ("cmra", "self", "co", "feature_concat", "none")


class RelationAwareModule(nn.Module):
    """One modality's relation-aware branch. ``q = Linear(input_dim, dim)(x)``, then by variant:

    - ``"cmra"``: ``RelationLayer(q, [ITR(other), q])`` (memory joined in time, other first)
    - ``"co"``: ``RelationLayer(q, [ITR(other)])``; ``"self"``: ``RelationLayer(q, [q])``
    - ``"feature_concat"`` (CMRA-F): memory ``[ITR(other), q]`` joined along features
    - ``"none"``: ``q`` alone.

    ``input_dim`` (formerly ``query_dim``) and ``other_dim`` are the widths of ``x`` and ``other``;
    ``num_layers`` (formerly ``itr_layers``) is the depth of the ITR that encodes ``other``, the
    paper's L (0: its projection alone); the relation layer on top is always one.
    Only the parts a variant uses are built. ``dropout_impl``: the relation layers' (see
    ``RelationLayer``). Shapes: x (B, T, input_dim), other (B, T, other_dim) -> (B, T, dim).
    """

    @renamed_keywords(query_dim="input_dim", itr_layers="num_layers")
    def __init__(
        self,
        input_dim: int,
        other_dim: int,
        dim: int = 256,
        *,
        variant: CMRAVariant = "cmra",
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
        variant = check_choice("variant", variant, CMRA_VARIANTS)
        input_dim, other_dim = check_positive_int("input_dim", input_dim), check_positive_int("other_dim", other_dim)
        dim, ffn_dim = check_positive_int("dim", dim), check_positive_int("ffn_dim", ffn_dim)
        num_layers = check_nonnegative_int("num_layers", num_layers)
        num_heads = check_divisor("num_heads", num_heads, "dim", dim)
        dropout, backend = check_dropout("dropout", dropout), check_backend_name("backend", backend)
        dropout_impl = check_dropout_impl(dropout_impl)
        kw = {"device": device, "dtype": dtype}
        self.variant, self.input_dim, self.other_dim = variant, input_dim, other_dim
        self.query_proj = nn.Linear(input_dim, dim, **kw)
        self.itr = None
        if variant in ("cmra", "co", "feature_concat"):
            self.itr = InternalTemporalRelation(
                other_dim, dim, num_layers=num_layers, num_heads=num_heads, ffn_dim=ffn_dim,
                dropout=dropout, dropout_impl=dropout_impl, backend=backend, **kw,
            )
        self.relation = None
        if variant != "none":
            layout = "feature" if variant == "feature_concat" else "time"
            self.relation = RelationLayer(
                dim, num_heads, ffn_dim=ffn_dim, dropout=dropout, memory_layout=layout, dropout_impl=dropout_impl,
                backend=backend, **kw,
            )

    query_dim = renamed_attribute("query_dim", "input_dim")

    def memory(self, q: Tensor, other: Tensor) -> list[Tensor]:
        """The attention memory of the variant: (B, T, dim) tensors from ``q`` and ``other``."""
        if self.variant == "self":
            return [q]
        if self.variant == "co":
            return [self.itr(other)]
        return [self.itr(other), q]

    def forward(self, x: Tensor, other: Tensor, *, return_weights: bool = False):
        """This modality's features, related to the other modality's temporal context.

        Axes: B batch, T segments (T >= 1), C input_dim, C' other_dim, E dim, H num_heads.
        Shapes: x (B, T, C), other (B, T, C') -> (B, T, E).
        return_weights=True: ``(out, AttentionWeights)``, the relation layer's weights: (B, H, T, 2T)
        over [ITR(other) ; q] for "cmra", (B, H, T, T) for "co", "self" and "feature_concat"; ``None`` for "none".
        """
        check_flag("return_weights", return_weights)
        check_input_dtypes(self, x=x, other=other)
        check_sequence_features("x", x, self.input_dim, nonempty=True)
        check_sequence_features("other", other, self.other_dim)
        check_same_batch_time("other", other, "x", x)
        q = self.query_proj(x)
        if self.relation is None:
            return (q, None) if return_weights else q
        return self.relation(q, self.memory(q, other), return_weights=return_weights)
