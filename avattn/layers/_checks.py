"""Shape checks shared by the layers: each error names the argument, its shape and the expected one."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..functional._validate import check_float_tensor, check_sequence


def check_sequence_features(name: str, x: object, dim: int) -> Tensor:
    """x must be (B, T, dim)."""
    check_float_tensor(name, x, 3, f"(B, T, {dim})")
    if x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (B, T, {dim}), got {tuple(x.shape)} (feature size {x.shape[-1]})")
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
    """memory: a non-empty list of (B, Tk_i, dim) tensors sharing the query's batch size."""
    check_sequence(name, memory)
    for i, m in enumerate(memory):
        check_sequence_features(f"{name}[{i}]", m, dim)
        check_same_batch(f"{name}[{i}]", m, "query", query)
    return memory


def check_visual_map(name: str, x: object, dim: int) -> Tensor:
    """x must be (B, T, H, W, dim) or (B, T, N, dim)."""
    if not hasattr(x, "dim") or x.dim() not in (4, 5):
        got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name} must have shape (B, T, H, W, {dim}) or (B, T, N, {dim}), got {got}")
    check_float_tensor(name, x, x.dim(), f"(B, T, H, W, {dim}) or (B, T, N, {dim})")
    if x.shape[-1] != dim:
        raise ValueError(
            f"{name} must have {dim} channels last: (B, T, H, W, {dim}) or (B, T, N, {dim}), got {tuple(x.shape)}"
        )
    return x
