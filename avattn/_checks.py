"""Argument checks for avattn's layers, losses, metrics and attention API, in one place.

Every error names the argument, what it got and what it expects, and is raised before any work:
``TypeError`` for a non-tensor or a tensor of the wrong dtype, ``ValueError`` for a wrong shape or
option value (flags, sizes, probabilities, choices; numpy scalars are accepted where a number is).
All checks read shapes, dtypes and devices only (no ``.item()``): they work on meta tensors and
are static under ``torch.compile``. Public: ``check_input_dtypes``, ``check_label_range``.

Axis legend: b batch, t segments, q query steps, k memory steps, h heads, d head dim, c features.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LABEL_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _got(x: object) -> str:
    return str(_shape(x)) if isinstance(x, Tensor) else type(x).__name__


# ---- tensors -------------------------------------------------------------------------------------


def check_tensor(name: str, t: object, layout: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(t).__name__}")
    return t


def check_float_tensor(name: str, t: object, ndim: int, layout: str) -> Tensor:
    check_tensor(name, t, layout)
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims {layout}, got shape {_shape(t)}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (float16/bfloat16/float32/float64), got {t.dtype}")
    return t


def check_floating(name: str, t: object) -> Tensor:
    """A floating tensor of any shape (dropout, elementwise maps)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a floating torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (float16/bfloat16/float32/float64), got {t.dtype}")
    return t


def check_integer_tensor(name: str, t: object, layout: str = "") -> Tensor:
    """A tensor of labels: int64, int32, int16 or uint8 (bool and floating refused)."""
    if not isinstance(t, Tensor) or t.dtype not in LABEL_DTYPES:
        got = t.dtype if isinstance(t, Tensor) else type(t).__name__
        where = f" {layout}" if layout else ""
        raise TypeError(f"{name} must be an integer tensor{where}, got {got} (int64, int32, int16 or uint8)")
    return t


def check_labels(name: str, labels: object, shape: tuple[int, ...], layout: str) -> Tensor:
    """An integer tensor of ``shape`` (int64/int32/int16/uint8; bool refused), returned as int64."""
    check_integer_tensor(name, labels, layout)
    if _shape(labels) != shape:
        raise ValueError(f"{name} must have shape {layout} = {shape}, got {_shape(labels)}")
    return labels.long()


def check_nonempty(name: str, t: Tensor, layout: str) -> Tensor:
    """Every axis >= 1: a loss or an accuracy is a mean, and a mean over nothing has no value."""
    if t.numel() == 0:
        raise ValueError(f"{name} must have at least one entry on every axis {layout}, got shape {_shape(t)}")
    return t


def check_sequence(name: str, seq: object) -> Sequence[Tensor]:
    if isinstance(seq, Tensor) or not isinstance(seq, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of tensors, got {type(seq).__name__}")
    if len(seq) == 0:
        raise ValueError(f"{name} must hold at least one tensor, got an empty {type(seq).__name__}")
    return seq


def check_sequence_features(name: str, x: object, dim: int, *, nonempty: bool = False) -> Tensor:
    """x must be (B, T, dim); with ``nonempty``, T >= 1 (attention or pooling over time needs a step)."""
    check_float_tensor(name, x, 3, f"(B, T, {dim})")
    if x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (B, T, {dim}), got {_shape(x)} (feature size {x.shape[-1]})")
    if nonempty and x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step (B, T >= 1, {dim}), got {_shape(x)}")
    return x


def check_same_batch_time(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if x.shape[:2] != ref.shape[:2]:
        raise ValueError(f"{name} must share (B, T) = {_shape(ref)[:2]} with {ref_name}, got {_shape(x)}")


def check_same_batch(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if x.shape[0] != ref.shape[0]:
        raise ValueError(f"{name} must have batch size {ref.shape[0]} like {ref_name}, got shape {_shape(x)}")


def check_memory(name: str, memory: object, query: Tensor, dim: int) -> Sequence[Tensor]:
    """memory: a non-empty list of (B, Tk_i >= 1, dim) tensors sharing the query's batch size."""
    check_sequence(name, memory)
    for i, m in enumerate(memory):
        check_sequence_features(f"{name}[{i}]", m, dim, nonempty=True)
        check_same_batch(f"{name}[{i}]", m, "query", query)
    return memory


def check_visual_map(name: str, x: object, dim: int) -> Tensor:
    """x must be (B, T, H, W, dim) or (B, T, N, dim) with at least one cell."""
    layout = f"(B, T, H, W, {dim}) or (B, T, N, {dim})"
    check_tensor(name, x, layout)
    if x.dim() not in (4, 5):
        raise ValueError(f"{name} must have shape {layout}, got {_shape(x)}")
    check_float_tensor(name, x, x.dim(), layout)
    if x.shape[-1] != dim:
        raise ValueError(f"{name} must have {dim} channels last: {layout}, got {_shape(x)}")
    if 0 in x.shape[2:-1]:
        raise ValueError(f"{name} must have at least one spatial cell (H, W or N >= 1), got {_shape(x)}")
    return x


def _floating(name: str, x: object) -> list[tuple[str, Tensor]]:
    if isinstance(x, Tensor):
        return [(name, x)] if x.is_floating_point() else []
    if isinstance(x, (list, tuple)):
        return [(f"{name}[{i}]", t) for i, t in enumerate(x) if isinstance(t, Tensor) and t.is_floating_point()]
    return []


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``; False where autocast does not exist (meta tensors)."""
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def check_input_dtypes(module: nn.Module, **inputs: object) -> None:
    """Floating inputs (tensors or lists of them) share one dtype with each other and the module's parameters.

    For a model built from avattn layers: call it first in ``forward`` with the inputs by name
    (``check_input_dtypes(self, visual=visual, audio=audio)``), so a dtype mismatch is a
    ``TypeError`` naming both sides before any work. Skipped inside an autocast region, where mixed
    dtypes are normal. Anything that is not a floating tensor is left to the shape checks. Static
    under ``torch.compile``; meta tensors pass.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be the torch.nn.Module whose parameters the inputs meet, got {type(module).__name__}")
    named = [pair for name, x in inputs.items() for pair in _floating(name, x)]
    if not named or autocast_enabled(named[0][1].device.type):
        return
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.dtype != first.dtype:
            raise TypeError(
                f"{name} has dtype {t.dtype} but {first_name} has dtype {first.dtype}: "
                "pass inputs of one dtype, or run under torch.autocast"
            )
    param = next(module.parameters(), None)
    if param is not None and param.dtype != first.dtype:
        raise TypeError(
            f"{first_name} has dtype {first.dtype} but the {type(module).__name__} parameters have dtype "
            f"{param.dtype}: convert the input or the layer (layer.to({first.dtype})), or run under torch.autocast"
        )


# ---- options -------------------------------------------------------------------------------------


def is_real(x: object) -> bool:
    """A Python or numpy real number (bool excluded)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def is_integer(x: object) -> bool:
    """A Python or numpy integer (bool excluded)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_flag(name: str, value: object) -> bool:
    """True or False: a truthy string or number is refused, not read as True."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_positive_int(name: str, value: object) -> int:
    """An integer >= 1 (numpy integers accepted; bool refused)."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_nonnegative_int(name: str, value: object) -> int:
    if not is_integer(value) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def check_divisor(name: str, value: object, dim_name: str, dim: int) -> int:
    """``value`` >= 1 and dividing ``dim`` (e.g. num_heads of dim, reduction of visual_dim)."""
    value = check_positive_int(name, value)
    if dim % value:
        raise ValueError(f"{name} must divide {dim_name}={dim}, got {name}={value}")
    return value


def check_dropout(name: str, value: object) -> float:
    """A probability (or a threshold on row-normalised weights) in [0, 1) (numpy scalars accepted)."""
    if not is_real(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_positive(name: str, value: object) -> float:
    """A small constant such as an epsilon: a finite number > 0."""
    if not is_real(value) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_float_dtype(name: str, dtype: object) -> torch.dtype:
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be a floating torch.dtype {FLOAT_DTYPES} or None, got {dtype!r}")
    return dtype


# ---- labels --------------------------------------------------------------------------------------


def check_label_range(name: str, labels: Tensor, num_classes: int, *, background: int | None = None) -> None:
    """Every label in ``0..num_classes-1``, or equal to ``background`` when one is given.

    For a model's own losses: ``F.cross_entropy`` skips label -100 silently and fails on others deep
    inside. ``labels`` is an integer tensor of any shape. Eagerly on CPU the ``ValueError`` names the
    label, the bad value and its index; on other devices, and under ``torch.compile``, the check is a
    ``torch._assert_async`` (no host sync; on CUDA a device-side assert without the value).
    """
    check_integer_tensor(name, labels)
    num_classes = check_positive_int("num_classes", num_classes)
    if background is not None:
        background = check_nonnegative_int("background", background)
    valid = f"0..{num_classes - 1}" + ("" if background is None else f" or the background label {background}")
    bad = (labels < 0) | (labels >= num_classes)
    if background is not None:
        bad = bad & (labels != background)
    if labels.device.type != "cpu" or torch.compiler.is_compiling():
        torch._assert_async(~bad.any(), f"{name} must be in {valid}")
        return
    if bad.any():
        where = tuple(bad.nonzero()[0].tolist())
        raise ValueError(f"{name} must be in {valid}, got {labels[where].item()} at index {where}")


# ---- the attention API ---------------------------------------------------------------------------


def _check_source(i: int, k: Tensor, v: Tensor, query: Tensor) -> None:
    b, _, h, d = query.shape
    check_float_tensor(f"keys[{i}]", k, 4, "(B, Tk, H, Dh)")
    check_float_tensor(f"values[{i}]", v, 4, "(B, Tk, H, Dh)")
    expected = (b, k.shape[1], h, d)
    if _shape(k) != expected:
        raise ValueError(
            f"keys[{i}] must have shape (B, Tk, H, Dh) = {expected} to match query {_shape(query)}, got {_shape(k)}"
        )
    if _shape(v) != expected:
        raise ValueError(f"values[{i}] must have shape {expected} like keys[{i}], got {_shape(v)}")
    if k.shape[1] == 0:
        raise ValueError(f"keys[{i}] has no time steps (shape {_shape(k)}); drop empty sources instead")
    for name, t in ((f"keys[{i}]", k), (f"values[{i}]", v)):
        if t.dtype != query.dtype:
            raise TypeError(f"{name} must have the query's dtype {query.dtype}, got {t.dtype}")
        if t.device != query.device:
            raise ValueError(f"{name} must be on the query's device {query.device}, got {t.device}")


def _check_masks(key_padding_masks: object, keys: Sequence[Tensor], query: Tensor) -> None:
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
        if _shape(m) != (query.shape[0], k.shape[1]):
            raise ValueError(
                f"key_padding_masks[{i}] must have shape (B, Tk) = {(query.shape[0], k.shape[1])}, got {_shape(m)}"
            )
        if m.device != query.device:
            raise ValueError(f"key_padding_masks[{i}] must be on the query's device {query.device}, got {m.device}")


def validate_attention_inputs(
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    key_padding_masks: Sequence[Tensor | None] | None,
) -> None:
    """Check shapes, dtypes and devices of a ``cmra_attention`` call before any work is done."""
    check_float_tensor("query", query, 4, "(B, Tq, H, Dh)")
    check_sequence("keys", keys)
    check_sequence("values", values)
    if len(keys) != len(values):
        raise ValueError(f"keys and values must have the same number of sources, got {len(keys)} and {len(values)}")
    for i, (k, v) in enumerate(zip(keys, values)):
        _check_source(i, k, v, query)
    if key_padding_masks is not None:
        _check_masks(key_padding_masks, keys, query)


def validate_options(scale: object, dropout_p: object, return_weights: object) -> tuple[float | None, float]:
    """Checks ``scale`` (None or finite > 0), ``dropout_p`` (in [0, 1)) and the ``return_weights`` flag;
    returns scale and dropout_p as Python floats."""
    if scale is not None and not (is_real(scale) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite positive number or None, got {scale!r}")
    if not (is_real(dropout_p) and 0.0 <= dropout_p < 1.0):
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    check_flag("return_weights", return_weights)
    return (None if scale is None else float(scale)), float(dropout_p)
