"""RelationLayer: a post-norm transformer layer whose attention reads a memory list.

Axis legend: b batch, t query steps, e model dim.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.nn as nn
from torch import Tensor

from .._checks import (
    check_divisor,
    check_dropout,
    check_flag,
    check_input_dtypes,
    check_positive_int,
    check_sequence_features,
)
from ..functional.backends import check_backend_name
from .cmra import CrossModalRelationAttention, FeatureConcatCMRA
from .dropout import check_dropout_impl, make_dropout


class FeedForward(nn.Module):
    """``W2 Drop(ReLU(W1 x))``. Shapes: (B, T, E) -> (B, T, E).

    ``dropout_impl``: ``"bit"`` (``BitDropout``, the default: same distribution as ``nn.Dropout``,
    cheaper masks, other random draws) or ``"torch"`` (``nn.Dropout``).
    """

    def __init__(
        self, dim: int, hidden_dim: int, *, dropout: float = 0.1, dropout_impl: str = "bit", device=None, dtype=None
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        dim, hidden_dim = check_positive_int("dim", dim), check_positive_int("hidden_dim", hidden_dim)
        dropout, dropout_impl = check_dropout("dropout", dropout), check_dropout_impl(dropout_impl)
        self.dim = dim
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim, **kw), nn.ReLU(), make_dropout(dropout, dropout_impl),
            nn.Linear(hidden_dim, dim, **kw),
        )

    def forward(self, x: Tensor) -> Tensor:
        """The position-wise two-layer MLP.

        Axes: B batch, T steps, E dim.
        Shapes: x (B, T, E) -> (B, T, E).
        """
        check_input_dtypes(self, x=x)
        check_sequence_features("x", x, self.dim)
        return self.net(x)


class RelationLayer(nn.Module):
    """``x = LN(x + Drop(Attn(x, memory)))``, then ``x = LN(x + Drop(FFN(x)))`` (post-norm).

    ``ffn_dim=None`` leaves out the feed-forward sublayer (the AV-interaction layer).
    ``memory_layout="feature"`` joins the memory along features (CMRA-F) instead of time.
    ``dropout_impl="bit"`` (the default) draws the residual and feed-forward dropout masks with
    ``BitDropout`` (same distribution as ``nn.Dropout``, cheaper on a CPU, other random draws);
    ``"torch"`` uses ``nn.Dropout``. The attention-weight dropout stays the attention backend's own.

    Shapes: x (B, T, E); memory[i] (B, Tk_i, E) -> (B, T, E) (and ``AttentionWeights`` when asked).
    """

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 4,
        *,
        ffn_dim: int | None = 2048,
        dropout: float = 0.1,
        memory_layout: Literal["time", "feature"] = "time",
        num_sources: int = 2,
        dropout_impl: str = "bit",
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        dim = check_positive_int("dim", dim)
        num_heads = check_divisor("num_heads", num_heads, "dim", dim)
        ffn_dim = None if ffn_dim is None else check_positive_int("ffn_dim", ffn_dim)
        num_sources = check_positive_int("num_sources", num_sources)
        dropout, backend = check_dropout("dropout", dropout), check_backend_name("backend", backend)
        dropout_impl = check_dropout_impl(dropout_impl)
        self.dim = dim
        if memory_layout == "time":
            self.attn = CrossModalRelationAttention(dim, num_heads, dropout=dropout, backend=backend, **kw)
        elif memory_layout == "feature":
            self.attn = FeatureConcatCMRA(dim, num_heads, num_sources=num_sources, dropout=dropout, backend=backend, **kw)
        else:
            raise ValueError(f"memory_layout must be 'time' or 'feature', got {memory_layout!r}")
        self.drop = make_dropout(dropout, dropout_impl)
        self.norm1 = nn.LayerNorm(dim, **kw)
        self.ffn = None if ffn_dim is None else FeedForward(dim, ffn_dim, dropout=dropout, dropout_impl=dropout_impl, **kw)
        self.norm2 = None if ffn_dim is None else nn.LayerNorm(dim, **kw)

    def forward(
        self,
        x: Tensor,
        memory: Sequence[Tensor],
        *,
        key_padding_masks: Sequence[Tensor | None] | None = None,
        return_weights: bool = False,
    ):
        """Attention to the memory (residual + LayerNorm), then the feed-forward (residual + LayerNorm).

        Axes: B batch, T query steps, Tk_i steps of memory source i (>= 1), E dim, H num_heads.
        Shapes: x (B, T, E); memory: a list of (B, Tk_i, E); key_padding_masks: None or one entry per
        source, None or bool (B, Tk_i) (True = padded) -> (B, T, E).
        return_weights=True: ``(out, AttentionWeights(weights (B, H, T, sum Tk_i), source_lengths))``.
        """
        check_flag("return_weights", return_weights)
        check_input_dtypes(self, x=x, memory=memory)
        check_sequence_features("x", x, self.dim)
        attended = self.attn(x, memory, key_padding_masks=key_padding_masks, return_weights=return_weights)
        attended, maps = attended if return_weights else (attended, None)
        x = self.norm1(x + self.drop(attended))
        if self.ffn is not None:
            x = self.norm2(x + self.drop(self.ffn(x)))
        return (x, maps) if return_weights else x
