"""SDPA backend: torch.nn.functional.scaled_dot_product_attention over the concatenated memory.

Axis legend: b batch, q query steps, k memory steps, h heads, d head dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .reference import concat_padding_masks


def sdpa_attention(
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    key_padding_masks: Sequence[Tensor | None] | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """Same contract as ``reference_attention`` (no weights), NaN semantics included. Returns (b, q, h, d).
    Unchecked inputs, as ``reference_attention``'s: ``cmra_attention(..., backend="sdpa")`` checks them.

    Torch's CPU kernel writes zeros for a query row holding NaN; adding ``0 * sum(query row)``
    (one cheap reduction, no host sync) gives NaN there, as the reference does.
    """
    k = torch.cat(list(keys), dim=1).transpose(1, 2)
    v = torch.cat(list(values), dim=1).transpose(1, 2)
    q = query.transpose(1, 2)
    mask = concat_padding_masks(key_padding_masks, keys)
    attn_mask = None
    if mask is not None:
        all_padded = mask.all(dim=1, keepdim=True)
        attn_mask = ~(mask & ~all_padded)[:, None, None, :]  # SDPA: True = takes part
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    out = out.transpose(1, 2) + query.sum(dim=-1, keepdim=True) * 0
    if mask is not None:
        out = out * ~all_padded[:, :, None, None]  # zeros fully padded rows; a NaN stays NaN
    return out
