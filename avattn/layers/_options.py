"""Constructor option checks: each error names the argument, the value it got and what it expects."""

from __future__ import annotations

import math
import numbers


def check_size(name: str, value: object) -> int:
    """A width or count: an integer >= 1 (numpy integers accepted, bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_fraction(name: str, value: object) -> float:
    """A dropout probability or a threshold on row-normalised weights: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_positive(name: str, value: object) -> float:
    """A small constant such as an epsilon: a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
