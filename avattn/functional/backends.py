"""Attention backends: what each one serves, and why it refuses what it cannot.

Each backend answers ``why_not(...)`` with ``None`` when it can serve a call, or a sentence
that says why not. ``"auto"`` takes the first of ``AUTO_ORDER`` that can serve.

``BACKENDS`` is every value the ``backend`` argument accepts, ``"auto"`` first: the choices of a
``--backend`` option. ``AUTO_ORDER`` is the concrete backends in the order ``"auto"`` tries them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_choice
from .reference import reference_attention
from .sdpa import sdpa_attention

BACKENDS: tuple[str, ...] = ("auto", "reference", "sdpa", "triton")
AUTO_ORDER: tuple[str, ...] = ("triton", "sdpa", "reference")


@dataclass(frozen=True)
class BackendSupport:
    """What a backend serves; ``devices`` and ``dtypes`` are checked before anything else."""

    name: str
    devices: tuple[str, ...]
    dtypes: tuple[torch.dtype, ...]
    head_dims: tuple[int, int]  # inclusive range
    returns_weights: bool
    dropout: bool
    notes: str = ""


SUPPORT = {
    "reference": BackendSupport(
        "reference", ("cpu", "cuda", "mps", "xpu"), (torch.float16, torch.bfloat16, torch.float32, torch.float64),
        (1, 1 << 16), True, True,
    ),
    "sdpa": BackendSupport(
        "sdpa", ("cpu", "cuda", "mps", "xpu"), (torch.float16, torch.bfloat16, torch.float32, torch.float64),
        (1, 1 << 16), False, True,
    ),
    "triton": BackendSupport(
        "triton", ("cuda", "cpu"), (torch.float16, torch.bfloat16, torch.float32), (16, 128), False, False,
        "cpu only under TRITON_INTERPRET=1 (tests), never chosen by 'auto'; no bf16 under the interpreter",
    ),
}


def _generic_why_not(
    name: str, query: Tensor, dropout_p: float, return_weights: bool
) -> str | None:
    s = SUPPORT[name]
    if return_weights and not s.returns_weights:
        return f"backend {name!r} does not return attention weights (return_weights=True needs 'reference')"
    if dropout_p > 0 and not s.dropout:
        return f"backend {name!r} does not apply attention dropout (dropout_p={dropout_p}); use 'sdpa' or 'reference'"
    if query.dtype not in s.dtypes:
        return f"backend {name!r} supports dtypes {[str(d) for d in s.dtypes]}, got {query.dtype}"
    lo, hi = s.head_dims
    if not lo <= query.shape[-1] <= hi:
        return f"backend {name!r} supports head dims {lo}..{hi}, got {query.shape[-1]}"
    return None


def _triton_why_not(query, keys, values, key_padding_masks, dropout_p, return_weights) -> str | None:
    reason = _generic_why_not("triton", query, dropout_p, return_weights)
    if reason is not None:
        return reason
    if query.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return "backend 'triton' needs a CUDA tensor (got a CPU tensor; CPU runs only under TRITON_INTERPRET=1)"
    if query.device.type not in ("cpu", "cuda"):
        return f"backend 'triton' needs a CUDA tensor, got device {query.device}"
    error = _triton_load_error()
    if error:
        return error
    return _TRITON_MODULE.why_not(query, keys, values, key_padding_masks)


_TRITON_MODULE = None
_TRITON_ERROR = ""


def _triton_load_error() -> str:
    """Loads the fused kernels' module once; returns why it cannot be loaded, or "".

    A constant under torch.compile, so the import runs outside the traced graph.
    """
    global _TRITON_MODULE, _TRITON_ERROR
    if _TRITON_MODULE is None and not _TRITON_ERROR:
        try:
            _TRITON_MODULE = importlib.import_module("avattn.kernels.cmra_op")
        except Exception as exc:  # triton missing, too old, or no usable driver
            _TRITON_ERROR = f"backend 'triton' is unavailable: {type(exc).__name__}: {exc}"
    return _TRITON_ERROR


# What torch.compiler.assume_constant_result sets, without importing torch._dynamo (and with it
# triton) at `import avattn`: compile runs the import eagerly and treats the answer as a constant.
_triton_load_error._dynamo_marked_constant = True


def _run_triton(query, keys, values, key_padding_masks, scale, dropout_p, return_weights):
    # select_backend ran validate_attention_inputs and why_not for this call: no second check
    return _TRITON_MODULE.cmra_attention_triton_checked(query, keys, values, key_padding_masks, scale), None


def _run_reference(query, keys, values, key_padding_masks, scale, dropout_p, return_weights):
    return reference_attention(query, keys, values, key_padding_masks, scale, dropout_p, return_weights)


def _run_sdpa(query, keys, values, key_padding_masks, scale, dropout_p, return_weights):
    return sdpa_attention(query, keys, values, key_padding_masks, scale, dropout_p), None


WHY_NOT: dict[str, Callable[..., str | None]] = {
    "reference": lambda q, k, v, m, p, w: _generic_why_not("reference", q, p, w),
    "sdpa": lambda q, k, v, m, p, w: _generic_why_not("sdpa", q, p, w),
    "triton": _triton_why_not,
}
RUN = {"reference": _run_reference, "sdpa": _run_sdpa, "triton": _run_triton}


def check_backend_name(name: str, backend: object) -> str:
    """``backend`` must be one of ``BACKENDS``; ``name`` is the argument's name in the message."""
    return check_choice(name, backend, BACKENDS)


def select_backend(
    backend: str,
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    key_padding_masks: Sequence[Tensor | None] | None,
    dropout_p: float,
    return_weights: bool,
) -> str:
    """The backend that will run this call; raises ``RuntimeError`` with the reason if forced and unable."""
    check_backend_name("backend", backend)
    if backend == "auto":
        for name in AUTO_ORDER:
            if name == "triton" and query.device.type != "cuda":
                continue  # the interpreter is for tests, never an automatic choice
            if WHY_NOT[name](query, keys, values, key_padding_masks, dropout_p, return_weights) is None:
                return name
        # The reference serves the widest range of calls: its refusal is the one to act on.
        reason = WHY_NOT["reference"](query, keys, values, key_padding_masks, dropout_p, return_weights)
        raise RuntimeError(f"no attention backend can serve this call: {reason}")
    reason = WHY_NOT[backend](query, keys, values, key_padding_masks, dropout_p, return_weights)
    if reason is not None:
        raise RuntimeError(reason)
    return backend
