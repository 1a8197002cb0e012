"""AudioVideoInteraction (CMRAN Eq. 9): attention from the fused feature to both modalities.

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
    check_positive_int,
    check_same_batch_time,
    check_sequence_features,
)
from .._deprecation import renamed_keywords
from ..functional.backends import check_backend_name
from .dropout import check_dropout_impl
from .relation_layer import RelationLayer

INTERACTION_VARIANTS: tuple[str, ...] = ("cmra", "self", "none")


class AudioVideoInteraction(nn.Module):
    """``f = v * a``; ``"cmra"``: ``O = LN(f + Drop(MHA(f, [a ; v])))`` (no FFN);
    ``"self"``: memory ``[f]``; ``"none"``: ``O = f``.

    ``dropout_impl``: the relation layer's (``"bit"`` or ``"torch"``, see ``RelationLayer``).
    The class keeps the paper's name ("audio-video interaction"); its inputs are named ``visual``
    and ``audio`` like every other layer's.

    Shapes: visual (B, T, E), audio (B, T, E) -> (B, T, E).
    """

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 4,
        *,
        variant: Literal["cmra", "self", "none"] = "cmra",
        dropout: float = 0.1,
        dropout_impl: str = "bit",
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        variant = check_choice("variant", variant, INTERACTION_VARIANTS)
        dim = check_positive_int("dim", dim)
        num_heads = check_divisor("num_heads", num_heads, "dim", dim)
        dropout, backend = check_dropout("dropout", dropout), check_backend_name("backend", backend)
        dropout_impl = check_dropout_impl(dropout_impl)
        self.dim, self.variant = dim, variant
        self.relation = None
        if variant != "none":
            self.relation = RelationLayer(
                dim, num_heads, ffn_dim=None, dropout=dropout, dropout_impl=dropout_impl, backend=backend,
                device=device, dtype=dtype,
            )

    @renamed_keywords(video="visual")
    def forward(self, visual: Tensor, audio: Tensor, *, return_weights: bool = False):
        """Fuse the two modalities (``f = visual * audio``) and let ``f`` attend to both.

        Axes: B batch, T segments (T >= 1), E dim.
        Shapes: visual (B, T, E), audio (B, T, E) -> (B, T, E).
        return_weights=True: ``(out, AttentionWeights)``, the weights (B, num_heads, T, 2T) over the
        memory [audio ; visual] ("cmra") or (B, num_heads, T, T) over [f] ("self"); ``None`` for "none".
        """
        check_flag("return_weights", return_weights)
        check_input_dtypes(self, visual=visual, audio=audio)
        check_sequence_features("visual", visual, self.dim, nonempty=True)
        check_sequence_features("audio", audio, self.dim)
        check_same_batch_time("audio", audio, "visual", visual)
        fused = visual * audio
        if self.relation is None:
            return (fused, None) if return_weights else fused
        memory = [audio, visual] if self.variant == "cmra" else [fused]
        return self.relation(fused, memory, return_weights=return_weights)
