"""Cross-modal relation attention: multi-head attention over a memory of several sequences.

Axis legend: b batch, q query steps, k memory steps, h heads, d head dim, e model dim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn
from einops import rearrange
from torch import Tensor

from .._checks import (
    check_divisor,
    check_dropout,
    check_flag,
    check_input_dtypes,
    check_memory,
    check_positive_int,
    check_sequence_features,
)
from .._deprecation import module_getattr
from ..functional import cmra_attention
from ..functional.backends import check_backend_name


class AttentionWeights(NamedTuple):
    """What ``return_weights=True`` adds in the attention layers (formerly ``AttentionMaps``).

    weights: (B, H, Tq, sum Tk_i), pre-dropout; source_lengths: Tk_i of each memory source.
    """

    weights: Tensor
    source_lengths: tuple[int, ...]

    def per_source(self) -> tuple[Tensor, ...]:
        """The weights split by memory source: each (B, H, Tq, Tk_i)."""
        return tuple(self.weights.split(list(self.source_lengths), dim=-1))


class CrossModalRelationAttention(nn.Module):
    """Multi-head attention whose key/value memory is the temporal concatenation of a list.

    ``memory=[query]`` is self-attention, ``[other]`` co-attention, ``[other, query]`` CMRA.
    Each source is projected on its own and never concatenated on the fused path.
    Numerically the same as ``nn.MultiheadAttention(dim, num_heads, dropout, batch_first=True)``
    on ``torch.cat(memory, 1)``; ``from_multihead_attention`` copies one's weights. Initialised as
    that module is (``reset_parameters``).

    Shapes: query (B, Tq, E); memory[i] (B, Tk_i, E); key_padding_masks None or a list with
    None or bool (B, Tk_i) (True = padded) -> (B, Tq, E), plus ``AttentionWeights`` when asked.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        memory_dim: int | None = None,
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dim = check_positive_int("dim", dim)
        num_heads = check_divisor("num_heads", num_heads, "dim", dim)
        dropout, backend = check_dropout("dropout", dropout), check_backend_name("backend", backend)
        memory_dim = None if memory_dim is None else check_positive_int("memory_dim", memory_dim)
        bias = check_flag("bias", bias)
        kw = {"device": device, "dtype": dtype}
        self.dim, self.num_heads, self.dropout, self.backend = dim, num_heads, dropout, backend
        self.memory_dim = dim if memory_dim is None else memory_dim
        self.q_proj = nn.Linear(dim, dim, bias=bias, **kw)
        self.kv_proj = nn.Linear(self.memory_dim, 2 * dim, bias=bias, **kw)
        self.out_proj = nn.Linear(dim, dim, bias=bias, **kw)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.MultiheadAttention(dim, num_heads, kdim=vdim=memory_dim)``'s initialisation.

        Xavier-uniform in-projection: with ``memory_dim == dim`` one packed (3E, E) matrix, so q, k
        and v share the bound sqrt(6 / (E + 3E)); otherwise q (E, E), k and v (E, memory_dim) each
        on their own. The out-projection keeps ``nn.Linear``'s default weight; all biases are zero.
        """
        e = self.dim
        with torch.no_grad():
            if self.memory_dim == e:
                bound = math.sqrt(6.0 / (e + 3 * e))
                self.q_proj.weight.uniform_(-bound, bound)
                self.kv_proj.weight.uniform_(-bound, bound)
            else:
                nn.init.xavier_uniform_(self.q_proj.weight)
                nn.init.xavier_uniform_(self.kv_proj.weight[:e])
                nn.init.xavier_uniform_(self.kv_proj.weight[e:])
            self.out_proj.reset_parameters()
            for proj in (self.q_proj, self.kv_proj, self.out_proj):
                if proj.bias is not None:
                    proj.bias.zero_()

    def attend(
        self,
        query: Tensor,
        memory: Sequence[Tensor],
        key_padding_masks: Sequence[Tensor | None] | None,
        return_weights: bool,
    ):
        """Project and attend; ``memory`` entries have ``memory_dim`` features. Every split is a view:
        the fused backend reads keys and values in place from the one kv projection of each source."""
        h = self.num_heads
        q = rearrange(self.q_proj(query), "b q (h d) -> b q h d", h=h)
        kv = [rearrange(self.kv_proj(m), "b k (kv h d) -> kv b k h d", kv=2, h=h) for m in memory]
        result = cmra_attention(
            q,
            [x[0] for x in kv],
            [x[1] for x in kv],
            key_padding_masks=key_padding_masks,
            dropout_p=self.dropout if self.training else 0.0,
            return_weights=return_weights,
            backend=self.backend,
        )
        out, weights = result if return_weights else (result, None)
        out = self.out_proj(rearrange(out, "b q h d -> b q (h d)"))
        if not return_weights:
            return out
        return out, AttentionWeights(weights, tuple(m.shape[1] for m in memory))

    def forward(
        self,
        query: Tensor,
        memory: Sequence[Tensor],
        *,
        key_padding_masks: Sequence[Tensor | None] | None = None,
        return_weights: bool = False,
    ):
        """Attend from ``query`` to the memory sources joined in time (each projected on its own).

        Axes: B batch, Tq query steps, Tk_i steps of memory source i (>= 1), E dim, H num_heads.
        Shapes: query (B, Tq, E); memory: a list of (B, Tk_i, memory_dim); key_padding_masks: None or
        one entry per source, None or bool (B, Tk_i) (True = padded) -> (B, Tq, E).
        return_weights=True: ``(out, AttentionWeights(weights (B, H, Tq, sum Tk_i), source_lengths))``,
        the weights before dropout; ``.per_source()`` splits them.
        """
        check_flag("return_weights", return_weights)
        check_input_dtypes(self, query=query, memory=memory)
        check_sequence_features("query", query, self.dim)
        check_memory("memory", memory, query, self.memory_dim)
        return self.attend(query, memory, key_padding_masks, return_weights)

    @classmethod
    def from_multihead_attention(cls, mha: nn.MultiheadAttention, **kwargs) -> CrossModalRelationAttention:
        """A copy of a ``nn.MultiheadAttention`` (packed in-projection, same k/v dims) as a CMRA."""
        if not mha._qkv_same_embed_dim:
            raise ValueError("from_multihead_attention needs an nn.MultiheadAttention with kdim == vdim == embed_dim")
        w, b = mha.in_proj_weight, mha.in_proj_bias
        layer = cls(
            mha.embed_dim, mha.num_heads, dropout=mha.dropout, bias=b is not None,
            device=w.device, dtype=w.dtype, **kwargs,
        )
        with torch.no_grad():
            layer.q_proj.weight.copy_(w[: mha.embed_dim])
            layer.kv_proj.weight.copy_(w[mha.embed_dim:])
            layer.out_proj.weight.copy_(mha.out_proj.weight)
            if b is not None:
                layer.q_proj.bias.copy_(b[: mha.embed_dim])
                layer.kv_proj.bias.copy_(b[mha.embed_dim:])
                layer.out_proj.bias.copy_(mha.out_proj.bias)
        return layer


class FeatureConcatCMRA(CrossModalRelationAttention):
    """CMRA-F ablation: the memory sources are joined along features, not time.

    All sources must have the same length; keys/values are projected from the
    ``num_sources * dim`` joined features.

    Shapes: query (B, Tq, E); memory: ``num_sources`` tensors (B, Tk, E) -> (B, Tq, E).
    """

    def __init__(self, dim: int, num_heads: int, *, num_sources: int = 2, **kwargs) -> None:
        if "memory_dim" in kwargs:
            raise ValueError("FeatureConcatCMRA sets memory_dim = num_sources * dim itself; do not pass memory_dim")
        num_sources = check_positive_int("num_sources", num_sources)
        super().__init__(dim, num_heads, memory_dim=num_sources * dim, **kwargs)
        self.num_sources = num_sources

    def forward(
        self,
        query: Tensor,
        memory: Sequence[Tensor],
        *,
        key_padding_masks: Sequence[Tensor | None] | None = None,
        return_weights: bool = False,
    ):
        """Attend from ``query`` to the memory sources joined along features (equal lengths).

        Axes: B batch, Tq query steps, Tk memory steps (shared by the sources), E dim, H num_heads.
        Shapes: query (B, Tq, E); memory: ``num_sources`` tensors (B, Tk, E) -> (B, Tq, E).
        key_padding_masks must be None (the joined sources share their steps).
        return_weights=True: ``(out, AttentionWeights(weights (B, H, Tq, Tk), (Tk,)))``.
        """
        check_flag("return_weights", return_weights)
        check_input_dtypes(self, query=query, memory=memory)
        check_sequence_features("query", query, self.dim)
        check_memory("memory", memory, query, self.dim)
        if len(memory) != self.num_sources:
            raise ValueError(f"memory must hold num_sources={self.num_sources} tensors, got {len(memory)}")
        lengths = {m.shape[1] for m in memory}
        if len(lengths) != 1:
            raise ValueError(
                f"memory tensors must share one length to be joined along features, got shapes {[tuple(m.shape) for m in memory]}"
            )
        if key_padding_masks is not None:
            raise ValueError("FeatureConcatCMRA takes no key_padding_masks: joined sources share time steps")
        return self.attend(query, [torch.cat(list(memory), dim=-1)], None, return_weights)


__getattr__ = module_getattr("avattn.layers.cmra", {"AttentionMaps": ("AttentionWeights", AttentionWeights)})
