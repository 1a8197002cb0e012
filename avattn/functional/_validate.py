"""Input checks for the attention API: every error names the argument, what it got, what it expects.

Axis legend (einops names used across avattn):
    b  batch (videos)           q  query time steps (segments)
    k  memory time steps        h  heads
    d  head dimension
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_float_tensor(name: str, t: object, ndim: int, layout: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims {layout}, got shape {_shape(t)}")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (float16/bfloat16/float32/float64), got {t.dtype}")
    return t


def check_sequence(name: str, seq: object) -> Sequence[Tensor]:
    if isinstance(seq, Tensor) or not isinstance(seq, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of tensors, got {type(seq).__name__}")
    if len(seq) == 0:
        raise ValueError(f"{name} must hold at least one tensor, got an empty {type(seq).__name__}")
    return seq


def validate_attention_inputs(
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    key_padding_masks: Sequence[Tensor | None] | None,
) -> None:
    """Check shapes, dtypes and devices of a ``cmra_attention`` call before any work is done."""
    check_float_tensor("query", query, 4, "(B, Tq, H, Dh)")
    b, _, h, d = query.shape
    check_sequence("keys", keys)
    check_sequence("values", values)
    if len(keys) != len(values):
        raise ValueError(f"keys and values must have the same number of sources, got {len(keys)} and {len(values)}")
    for i, (k, v) in enumerate(zip(keys, values)):
        check_float_tensor(f"keys[{i}]", k, 4, "(B, Tk, H, Dh)")
        check_float_tensor(f"values[{i}]", v, 4, "(B, Tk, H, Dh)")
        expected = (b, k.shape[1], h, d)
        if _shape(k) != expected:
            raise ValueError(f"keys[{i}] must have shape (B, Tk, H, Dh) = {expected} to match query {_shape(query)}, got {_shape(k)}")
        if _shape(v) != expected:
            raise ValueError(f"values[{i}] must have shape {expected} like keys[{i}], got {_shape(v)}")
        if k.shape[1] == 0:
            raise ValueError(f"keys[{i}] has no time steps (shape {_shape(k)}); drop empty sources instead")
        for name, t in ((f"keys[{i}]", k), (f"values[{i}]", v)):
            if t.dtype != query.dtype:
                raise TypeError(f"{name} must have the query's dtype {query.dtype}, got {t.dtype}")
            if t.device != query.device:
                raise ValueError(f"{name} must be on the query's device {query.device}, got {t.device}")
    if key_padding_masks is None:
        return
    check_sequence("key_padding_masks", key_padding_masks)
    if len(key_padding_masks) != len(keys):
        raise ValueError(
            f"key_padding_masks must have one entry (a mask or None) per source: {len(keys)}, got {len(key_padding_masks)}"
        )
    for i, (m, k) in enumerate(zip(key_padding_masks, keys)):
        if m is None:
            continue
        if not isinstance(m, Tensor):
            raise TypeError(f"key_padding_masks[{i}] must be a bool tensor (B, Tk) or None, got {type(m).__name__}")
        if m.dtype != torch.bool:
            raise TypeError(f"key_padding_masks[{i}] must be a bool tensor (True = padded), got {m.dtype}")
        if _shape(m) != (b, k.shape[1]):
            raise ValueError(f"key_padding_masks[{i}] must have shape (B, Tk) = {(b, k.shape[1])}, got {_shape(m)}")
        if m.device != query.device:
            raise ValueError(f"key_padding_masks[{i}] must be on the query's device {query.device}, got {m.device}")


def _is_real(x: object) -> bool:
    """A Python or numpy real number (bool excluded)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def validate_options(scale: object, dropout_p: object) -> tuple[float | None, float]:
    """Checks ``scale`` (None or finite > 0) and ``dropout_p`` (in [0, 1)); returns them as Python floats."""
    if scale is not None and not (_is_real(scale) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite positive number or None, got {scale!r}")
    if not (_is_real(dropout_p) and 0.0 <= dropout_p < 1.0):
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    return (None if scale is None else float(scale)), float(dropout_p)
