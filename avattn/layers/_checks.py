"""Checks shared by the layers: each error names the argument, what it got and what it expects.

Forward checks (shapes, dtypes) run before any work; constructor checks validate hyperparameters.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from ..functional._validate import check_float_tensor, check_sequence
from ..functional.backends import check_backend_name


def check_sequence_features(name: str, x: object, dim: int, *, nonempty: bool = False) -> Tensor:
    """x must be (B, T, dim); with ``nonempty``, T >= 1 (attention or pooling over time needs a step)."""
    check_float_tensor(name, x, 3, f"(B, T, {dim})")
    if x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (B, T, {dim}), got {tuple(x.shape)} (feature size {x.shape[-1]})")
    if nonempty and x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step (B, T >= 1, {dim}), got {tuple(x.shape)}")
    return x


def check_same_batch_time(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if x.shape[:2] != ref.shape[:2]:
        raise ValueError(
            f"{name} must share (B, T) = {tuple(ref.shape[:2])} with {ref_name}, got {tuple(x.shape)}"
        )


def check_same_batch(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if x.shape[0] != ref.shape[0]:
        raise ValueError(f"{name} must have batch size {ref.shape[0]} like {ref_name}, got shape {tuple(x.shape)}")


def check_memory(name: str, memory: object, query: Tensor, dim: int) -> Sequence[Tensor]:
    """memory: a non-empty list of (B, Tk_i >= 1, dim) tensors sharing the query's batch size."""
    check_sequence(name, memory)
    for i, m in enumerate(memory):
        check_sequence_features(f"{name}[{i}]", m, dim, nonempty=True)
        check_same_batch(f"{name}[{i}]", m, "query", query)
    return memory


def check_visual_map(name: str, x: object, dim: int) -> Tensor:
    """x must be (B, T, H, W, dim) or (B, T, N, dim) with at least one cell."""
    if not hasattr(x, "dim") or x.dim() not in (4, 5):
        got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name} must have shape (B, T, H, W, {dim}) or (B, T, N, {dim}), got {got}")
    check_float_tensor(name, x, x.dim(), f"(B, T, H, W, {dim}) or (B, T, N, {dim})")
    if x.shape[-1] != dim:
        raise ValueError(
            f"{name} must have {dim} channels last: (B, T, H, W, {dim}) or (B, T, N, {dim}), got {tuple(x.shape)}"
        )
    if 0 in x.shape[2:-1]:
        raise ValueError(f"{name} must have at least one spatial cell (H, W or N >= 1), got {tuple(x.shape)}")
    return x


def _floating(name: str, x: object) -> list[tuple[str, Tensor]]:
    if isinstance(x, Tensor):
        return [(name, x)] if x.is_floating_point() else []
    if isinstance(x, (list, tuple)):
        return [(f"{name}[{i}]", t) for i, t in enumerate(x) if isinstance(t, Tensor) and t.is_floating_point()]
    return []


def check_input_dtypes(module: nn.Module, **inputs: object) -> None:
    """Floating inputs (tensors or lists of them) share one dtype with each other and the module's parameters.

    Skipped inside an autocast region, where mixed dtypes are normal. Anything that is not a
    floating tensor is left to the shape checks. Static under ``torch.compile``.
    """
    named = [pair for name, x in inputs.items() for pair in _floating(name, x)]
    if not named or torch.is_autocast_enabled(named[0][1].device.type):
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


def check_positive_int(name: str, value: object) -> int:
    """An integer >= 1 (numpy integers accepted; bool refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_nonnegative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
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
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_positive(name: str, value: object) -> float:
    """A small constant such as an epsilon: a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_backend(backend: object) -> str:
    return check_backend_name("backend", backend)
