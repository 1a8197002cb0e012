"""AudioVideoInteraction (CMRAN Eq. 9): attention from the fused feature to both modalities.

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
    check_positive_int,
    check_same_batch_time,
    check_sequence_features,
)
from .dropout import check_dropout_impl
from .relation_layer import RelationLayer

INTERACTION_VARIANTS: tuple[str, ...] = ("cmra", "self", "none")


class AudioVideoInteraction(nn.Module):
    """``f = v * a``; ``"cmra"``: ``O = LN(f + Drop(MHA(f, [a ; v])))`` (no FFN);
    ``"self"``: memory ``[f]``; ``"none"``: ``O = f``.

    ``dropout_impl``: the relation layer's (``"torch"`` or ``"bit"``, see ``RelationLayer``).

    Shapes: video (B, T, E), audio (B, T, E) -> (B, T, E).
    """

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 4,
        *,
        variant: Literal["cmra", "self", "none"] = "cmra",
        dropout: float = 0.1,
        dropout_impl: str = "torch",
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if variant not in INTERACTION_VARIANTS:
            raise ValueError(f"variant must be one of {INTERACTION_VARIANTS}, got {variant!r}")
        dim = check_positive_int("dim", dim)
        num_heads = check_divisor("num_heads", num_heads, "dim", dim)
        dropout, backend = check_dropout("dropout", dropout), check_backend(backend)
        dropout_impl = check_dropout_impl(dropout_impl)
        self.dim, self.variant = dim, variant
        self.relation = None
        if variant != "none":
            self.relation = RelationLayer(
                dim, num_heads, ffn_dim=None, dropout=dropout, dropout_impl=dropout_impl, backend=backend,
                device=device, dtype=dtype,
            )

    def forward(self, video: Tensor, audio: Tensor, *, return_weights: bool = False):
        check_input_dtypes(self, video=video, audio=audio)
        check_sequence_features("video", video, self.dim, nonempty=True)
        check_sequence_features("audio", audio, self.dim)
        check_same_batch_time("audio", audio, "video", video)
        fused = video * audio
        if self.relation is None:
            return (fused, None) if return_weights else fused
        memory = [audio, video] if self.variant == "cmra" else [fused]
        return self.relation(fused, memory, return_weights=return_weights)
