"""Reference backend: plain einsum + softmax over the concatenated memory.

Every other backend is tested against this one in float64. It is also the only backend that
returns the attention weights.

Axis legend: b batch, q query steps, k memory steps (all sources), h heads, d head dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def concat_padding_masks(
    key_padding_masks: Sequence[Tensor | None] | None, keys: Sequence[Tensor]
) -> Tensor | None:
    """One (B, sum Tk_i) bool mask (True = padded) for the concatenated memory, or None."""
    if key_padding_masks is None or all(m is None for m in key_padding_masks):
        return None
    return torch.cat(
        [
            m if m is not None else torch.zeros(k.shape[:2], dtype=torch.bool, device=k.device)
            for m, k in zip(key_padding_masks, keys)
        ],
        dim=1,
    )


def reference_attention(
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    key_padding_masks: Sequence[Tensor | None] | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(scale * q k^T) v over the time-concatenated memory.

    Shapes: query (b, q, h, d); keys/values[i] (b, k_i, h, d); masks[i] (b, k_i) or None.
    The inputs are not checked here (a backend runs on what ``cmra_attention`` has checked): call
    ``cmra_attention(..., backend="reference")`` for checked input and clear errors.
    Returns the output (b, q, h, d) and, if asked, the pre-dropout weights (b, h, q, sum k_i).
    A batch row whose keys are all padded gets zero output and zero weights.

    NaN: a NaN in a query row, or in any key or value of a batch row (padded or not), gives NaN
    in that row's output, as in ``nn.MultiheadAttention``: the padding mask is added to the
    scores and the weights are multiplied, so masking never replaces a NaN by a finite number.
    """
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    k = torch.cat(list(keys), dim=1)
    v = torch.cat(list(values), dim=1)
    scores = torch.einsum("bqhd,bkhd->bhqk", query, k) * scale
    mask = concat_padding_masks(key_padding_masks, keys)
    if mask is not None:
        # Rows with every key padded attend uniformly to finite scores, then are zeroed:
        # a finite softmax keeps the backward pass free of NaN.
        all_padded = mask.all(dim=1, keepdim=True)
        mask = mask & ~all_padded
        bias = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
        scores = scores + bias.masked_fill(mask, torch.finfo(scores.dtype).min)[:, None, None, :]
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights * ~all_padded[:, None, None, :]
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    out = torch.einsum("bhqk,bkhd->bqhd", attn, v)
    return out, (weights if return_weights else None)
