"""``cmra_attention``: multi-head attention whose memory is several sequences joined in time.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from .._checks import validate_attention_inputs, validate_options
from .backends import RUN, select_backend


def cmra_attention(
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    *,
    key_padding_masks: Sequence[Tensor | None] | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Attend from ``query`` to the temporal concatenation of the memory sources.

    Args:
        query: (B, Tq, H, Dh).
        keys, values: equal-length lists; entry i is (B, Tk_i, H, Dh). Lengths may differ
            between sources. The fused backend reads each source in place (no ``torch.cat``).
        key_padding_masks: None, or one entry per source: None or a bool (B, Tk_i) mask,
            True = padded (ignored), as in ``nn.MultiheadAttention``. A batch row whose keys
            are all padded returns zeros.
        scale: logit scale, a finite positive number (numpy scalars too); default ``Dh ** -0.5``.
        dropout_p: dropout on the attention weights (pass 0.0 in eval mode).
        return_weights: True or False (any other value is refused); True also returns the
            pre-dropout weights (B, H, Tq, sum Tk_i).
        backend: one of ``BACKENDS``: "auto" (the first of ``AUTO_ORDER`` that can serve),
            "reference", "sdpa" or "triton".

    Returns:
        (B, Tq, H, Dh), or ``(out, weights)`` when ``return_weights``.

    Shapes and options are checked before any work, from shapes and dtypes alone (no ``.item()``):
    meta tensors and ``torch.compile`` see no host sync. B = 0 or Tq = 0 give an empty output.
    """
    validate_attention_inputs(query, keys, values, key_padding_masks)
    scale, dropout_p = validate_options(scale, dropout_p, return_weights)
    name = select_backend(backend, query, keys, values, key_padding_masks, dropout_p, return_weights)
    out, weights = RUN[name](query, keys, values, key_padding_masks, scale, dropout_p, return_weights)
    return (out, weights) if return_weights else out
