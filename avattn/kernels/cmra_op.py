"""Launchers and ``torch.library`` ops for the fused multi-source attention.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim.

Public interface (used by ``avattn.functional.backends``):
    ``why_not(query, keys, values, key_padding_masks) -> str | None``
    ``cmra_attention_triton(query, keys, values, key_padding_masks, scale) -> Tensor`` (checks its
    inputs and raises ``why_not``'s reason); ``cmra_attention_triton_checked``, the same without
    the checks, for ``avattn.functional``, which has run them

Ops (``torch.library.custom_op``; one opaque node each under ``torch.compile``):
    ``avattn::cmra_fwd(Tensor q, Tensor[] keys, Tensor[] values, Tensor?[] masks, float scale)
        -> (Tensor out, Tensor lse)``
        out (B, Tq, H, Dh) contiguous in the query's dtype; lse fp32 (B, H, Tq), base 2,
        +inf on rows whose keys are all padded. ``masks`` always has one entry per source
        (None where a source has no padding). Differentiable in q, keys and values.
    ``avattn::cmra_bwd(Tensor dout, Tensor q, Tensor[] keys, Tensor[] values, Tensor?[] masks,
        Tensor out, Tensor lse, float scale) -> Tensor[]``
        returns [dq, dk_0..dk_{n-1}, dv_0..dv_{n-1}] (contiguous, input dtype).

``custom_op`` is used rather than ``triton_op`` so that ``torch.compile`` never has to trace
the launchers' Python (shape heuristics, group merging): it sees one op forward and one op
backward; the same registration runs under the CPU interpreter (``TRITON_INTERPRET=1``). Any number of sources is accepted: sources run in groups of ``MAX_SOURCES``
(4) per launch, and groups are merged through their log-sum-exp (forward) and by summing
partial dQ (backward); the AVE case (2 sources) is one launch forward.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import triton
from torch import Tensor

from .._checks import validate_attention_inputs, validate_options
from .cmra_bwd import cmra_bwd_dkdv_kernel, cmra_bwd_dq_kernel, cmra_bwd_packed_kernel, cmra_delta_kernel
from .cmra_fwd import INTERPRETED, MAX_SOURCES, cmra_fwd_kernel

_LOG2E = 1.4426950408889634
_INT32_MAX = 2**31 - 1


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    """Tile configuration of one call. ``pack`` problems (b, h) share a program."""

    pack: int
    block_m: int  # query rows per program (forward, dQ)
    block_n: int  # key columns per step (forward, dQ)
    bwd_block_m: int  # query rows per step (dK/dV)
    bwd_block_n: int  # key columns per program (dK/dV)
    num_warps: int = 4
    num_stages: int = 2
    fwd_warps: int | None = None  # warps of the forward kernel, if not num_warps
    packed_bwd: bool = True  # one program per packed group for the whole backward, when its memory fits one tile
    packed_bwd_warps: int = 8  # the one-program backward spills registers with 4 warps (masked, or Dh > 64)
    # ptxas's register limit per thread (`maxnreg`; None: ptxas's own choice). Left to itself, ptxas
    # holds an 8-warp fp16/bf16 kernel that needs a little more than 128 registers to 128 (two blocks
    # per SM) and spills the rest: 8-40 B per thread in several launched variants, not the same ones
    # under Triton 3.6 and 3.9. At 255 it gives them what they need. Not for fp32: its FMA dots take
    # every register allowed and spill more (compile check).
    max_registers: int | None = None


_OVERRIDE: Config | None = None

# The one-program backward keeps every source's tiles live at once: with 3 or 4 sources it spills
# registers on sm_90 (compile check), so those take the split backward.
PACKED_BWD_MAX_SOURCES = 2


@contextlib.contextmanager
def config_override(config: Config):
    """Force a tile configuration (tests use it to reach every masking path on small inputs)."""
    global _OVERRIDE
    prior, _OVERRIDE = _OVERRIDE, config
    try:
        yield
    finally:
        _OVERRIDE = prior


# Debug hook: fill every buffer the kernels must write with NaN first, so unwritten elements show.
POISON_OUTPUTS = False


def _buffer(shape, dtype: torch.dtype, device: torch.device) -> Tensor:
    if POISON_OUTPUTS:
        return torch.full(shape, math.nan, dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, triton.next_power_of_2(max(1, n)))


# Architectures (compute capability major * 10 + minor) whose tiles ``choose_config`` knows: sm_80 (A100)
# has the same 64K registers per SM as sm_90 but its compiler needs more of them for the same tile.
ARCHS = (80, 90)


def device_arch(device: torch.device) -> int:
    """Compute capability of a CUDA device as major * 10 + minor; 90 elsewhere (the interpreter)."""
    if device.type != "cuda":
        return 90
    major, minor = torch.cuda.get_device_capability(device)
    return major * 10 + minor


def choose_config(tq: int, tks: Sequence[int], head_dim: int, dtype: torch.dtype, arch: int = 90) -> Config:
    """Heuristic tiles per (lengths, head dim, dtype, architecture): pack short problems into 32-row
    tiles, FA2-style blocks for long ones.

    The batch size never enters, so a new batch size reuses the compiled kernels. Every variant that
    the GPU tests, the GPU benchmarks and the CMRAN step launch compiles for sm_90 and sm_80 without a
    register spill under Triton 3.6 and 3.9 (``tests/triton_compile_check.py`` fails on any; other
    shapes follow the same rules, unchecked). float32 runs exact (FMA, not tensor-core) dots, whose
    operands live in registers, so it gets small tiles, 8 warps and the split backward; so does head
    dim > 64 in the one-program backward. Below sm_90 (``arch < 90``) the long-memory fp16/bf16 tiles
    are those of head dim > 64 (dK/dV: 32 keys per program at head dim <= 64).
    """
    if _OVERRIDE is not None:
        return _OVERRIDE
    max_tk = max(tks)
    fp32 = dtype == torch.float32
    wide = head_dim > 64
    if tq <= 16 and max_tk <= 32:
        # Short memory (AVE: Tq = Tk = 10): the whole memory of `pack` problems in one 32x32 tile at most.
        # (64x128 tiles spilled in the one-program backward once it isolated the packed problems; 32x64
        # ones, e.g. six sources of up to 17 steps, spilled 8-616 B in the forward and dK/dV at 255 registers.)
        pack = max(1, min(32 // tq, 32 // max_tk))
        bm = _pow2(pack * tq)
        bn = _pow2(pack * max_tk)
        if fp32:  # the one-program backward spills in fp32 at any tile size
            if wide:
                return Config(pack, 16, 16, 16, 16, num_warps=8, num_stages=2, packed_bwd=False)
            # 16 query rows per program and 16-row dK/dV steps, 2 stages, on every architecture: with
            # 32 rows (one packed group) ptxas held the forward or the dK/dV kernel to 80 registers and
            # they spilled 8-24 B, not the same ones under Triton 3.6 and 3.9 nor on sm_80 and sm_90
            return Config(pack, 16, bn, 16, bn, num_warps=8, num_stages=2, packed_bwd=False)
        # At head dim 128 the 8-warp forward got 128 registers and spilled 16-40 B on sm_80; with 4 warps it
        # got 168 and spilled 8-24 B on sm_90 (six sources).
        return Config(pack, bm, bn, bm, bn, num_warps=8, num_stages=1, fwd_warps=4 if wide and arch < 90 else None,
                      packed_bwd=not wide, max_registers=255)
    if fp32:
        if wide:  # 32 query rows per program: the forward and dQ spilled 8-16 B at 80 registers
            return Config(1, 16, 16, 16, 32, num_warps=8, num_stages=2)
        # dK/dV in 16x16 steps: 32x32 spilled 8 B at 80 registers on sm_80 (Triton 3.6), 16x32 under 3.9
        return Config(1, 32, 32, 16, 16, num_warps=8, num_stages=2)
    big = wide or arch < 90  # fewer registers per element to spare
    bm = min(_pow2(tq), 64 if big else 128)
    bn = 32 if big else 64
    warps = 8  # 4 spill in the dK/dV kernel at head dim 128, and at 64 with 64x64 blocks (Tq < 128: 32 B)
    # dK/dV: sm_80 at Dh <= 64 takes 32 keys per program (32x64 blocks spilled 40 B at 255 registers
    # under Triton 3.6; 121 registers with 32x32)
    bwd_m, bwd_n = (32, 32) if arch < 90 and not wide else (32, 64) if big else (64, 64)
    return Config(1, bm, bn, bwd_m, bwd_n, num_warps=warps, num_stages=2, max_registers=255)


def _precision(dtype: torch.dtype) -> str:
    """fp32 inputs get exact fp32 dots unless the user allowed TF32 for matmuls, as torch does."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def _src_args(k: Tensor, v: Tensor, m: Tensor | None) -> list:
    mm = k if m is None else m  # dummy pointer when there is no mask (never read)
    sm = (0, 0) if m is None else (m.stride(0), m.stride(1))
    return [k, v, mm, k.shape[1], *k.stride(), *v.stride(), *sm]


def _src_slots(keys, values, masks) -> tuple[list, list[bool]]:
    args, has = [], []
    for i in range(MAX_SOURCES):
        if i < len(keys):
            args += _src_args(keys[i], values[i], masks[i])
            has.append(masks[i] is not None)
        else:  # unused slot: repeat source 0 (never read: NUM_SRC guards it)
            args += _src_args(keys[0], values[0], None)
            has.append(False)
    return args, has


def _as_bytes(masks: Sequence[Tensor | None]) -> list[Tensor | None]:
    """bool (B, Tk) masks as uint8 views (same bytes, no copy): Triton loads them as integers."""
    return [None if m is None else m.view(torch.uint8) for m in masks]


def _groups(n: int) -> list[range]:
    return [range(i, min(n, i + MAX_SOURCES)) for i in range(0, n, MAX_SOURCES)]


def _row_grid(n_prob: int, tq: int, cfg: Config) -> tuple[int, int]:
    """Forward and dQ launches: (problem groups, query-row blocks)."""
    return triton.cdiv(n_prob, cfg.pack), triton.cdiv(cfg.pack * tq, cfg.block_m)


def _key_grid(n_prob: int, tk: int, cfg: Config) -> tuple[int, int]:
    """dK/dV launch of one source: (problem groups, key blocks)."""
    return triton.cdiv(n_prob, cfg.pack), triton.cdiv(cfg.pack * tk, cfg.bwd_block_n)


_GRID_LIMITS = (2**31 - 1, 65535)  # CUDA's limits on grid axes x and y


def _device_guard(device: torch.device):
    """Launch on the tensors' GPU (``cuda:1`` included), not on the current one."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


# ----------------------------------------------------------------------------- launchers


def _launch_fwd(q, keys, values, masks, scale, out, lse, cfg: Config) -> None:
    b, tq, h, d = q.shape
    n_prob = b * h
    slots, has = _src_slots(keys, values, masks)
    cmra_fwd_kernel[_row_grid(n_prob, tq, cfg)](
        q, *q.stride(), out, *out.stride(), lse, *slots,
        h, tq, n_prob, scale * _LOG2E,
        NUM_SRC=len(keys), HAS_M0=has[0], HAS_M1=has[1], HAS_M2=has[2], HAS_M3=has[3],
        PACK=cfg.pack, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=_pow2(d), HEAD_DIM=d,
        PREC=_precision(q.dtype), num_warps=cfg.fwd_warps or cfg.num_warps, num_stages=cfg.num_stages,
        maxnreg=cfg.max_registers,
    )


def cmra_fwd_impl(q: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor],
                  masks: Sequence[Tensor | None], scale: float) -> tuple[Tensor, Tensor]:
    with _device_guard(q.device):
        return _fwd(q, keys, values, masks, scale)


def _fwd(q, keys, values, masks, scale) -> tuple[Tensor, Tensor]:
    b, tq, h, d = q.shape
    out = _buffer((b, tq, h, d), q.dtype, q.device)
    lse = _buffer((b, h, tq), torch.float32, q.device)
    if out.numel() == 0:  # B, Tq or H is 0: nothing to compute
        return out, lse
    masks = _as_bytes(masks)
    cfg = choose_config(tq, [k.shape[1] for k in keys], d, q.dtype, device_arch(q.device))
    groups = _groups(len(keys))
    if len(groups) == 1:
        _launch_fwd(q, keys, values, masks, scale, out, lse, cfg)
        return out, lse
    # More sources than one launch takes: attend to each group, merge through the LSE.
    outs, lses = [], []
    for g in groups:
        o_g = _buffer((b, tq, h, d), torch.float32, q.device)
        l_g = _buffer((b, h, tq), torch.float32, q.device)
        _launch_fwd(q, [keys[i] for i in g], [values[i] for i in g], [masks[i] for i in g], scale, o_g, l_g, cfg)
        outs.append(o_g)
        lses.append(torch.where(torch.isinf(l_g), -math.inf, l_g))  # empty group: weight 0
    lse_all = torch.stack(lses)  # (g, b, h, q)
    top = lse_all.amax(0)
    top_safe = torch.where(torch.isinf(top), 0.0, top)
    w = torch.exp2(lse_all - top_safe)  # (g, b, h, q)
    total = w.sum(0)
    merged = sum(o * (wg / torch.where(total > 0, total, 1.0)).permute(0, 2, 1)[..., None] for o, wg in zip(outs, w))
    out.copy_(merged)
    lse.copy_(torch.where(total > 0, top_safe + torch.log2(torch.where(total > 0, total, 1.0)), math.inf))
    return out, lse


def cmra_bwd_impl(dout: Tensor, q: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor],
                  masks: Sequence[Tensor | None], out: Tensor, lse: Tensor, scale: float) -> list[Tensor]:
    with _device_guard(q.device):
        return _bwd(dout, q, keys, values, masks, out, lse, scale)


def _bwd(dout, q, keys, values, masks, out, lse, scale) -> list[Tensor]:
    b, tq, h, d = q.shape
    n_prob = b * h
    if b * h * tq == 0:  # nothing attends: every gradient is zero
        zeros = lambda t: torch.zeros(t.shape, dtype=t.dtype, device=t.device)  # noqa: E731
        return [zeros(q), *[zeros(k) for k in keys], *[zeros(v) for v in values]]
    dq = _buffer(q.shape, q.dtype, q.device)
    dks = [_buffer(k.shape, k.dtype, k.device) for k in keys]
    dvs = [_buffer(v.shape, v.dtype, v.device) for v in values]
    masks = _as_bytes(masks)
    cfg = choose_config(tq, [k.shape[1] for k in keys], d, q.dtype, device_arch(q.device))
    block_d = _pow2(d)
    prec = _precision(q.dtype)
    qk_scale = scale * _LOG2E

    if (cfg.packed_bwd and len(keys) <= PACKED_BWD_MAX_SOURCES and cfg.block_m >= cfg.pack * tq
            and cfg.block_n >= cfg.pack * max(k.shape[1] for k in keys)):
        # Short memory: one program does the whole backward of its problems (minimum traffic).
        slots, has = _src_slots(keys, values, masks)
        grads = [t for pair in zip(dks, dvs) for t in pair]
        grads += [dks[0], dvs[0]] * (MAX_SOURCES - len(keys))  # unused slots (never written)
        strides = [st for pair in zip(dks, dvs) for t in pair for st in t.stride()]
        strides += [*dks[0].stride(), *dvs[0].stride()] * (MAX_SOURCES - len(keys))
        cmra_bwd_packed_kernel[(triton.cdiv(n_prob, cfg.pack),)](
            q, *q.stride(), out, *out.stride(), dout, *dout.stride(), dq, *dq.stride(), lse,
            *slots, *grads, *strides, h, tq, n_prob, qk_scale, scale,
            NUM_SRC=len(keys), HAS_M0=has[0], HAS_M1=has[1], HAS_M2=has[2], HAS_M3=has[3],
            PACK=cfg.pack, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=block_d, HEAD_DIM=d,
            PREC=prec, num_warps=cfg.packed_bwd_warps, num_stages=cfg.num_stages, maxnreg=cfg.max_registers,
        )
        return [dq, *dks, *dvs]

    delta = _buffer((b, h, tq), torch.float32, q.device)
    n_rows = n_prob * tq
    cmra_delta_kernel[(triton.cdiv(n_rows, 64),)](
        out, *out.stride(), dout, *dout.stride(), delta, h, tq, n_rows,
        BLOCK=64, BLOCK_D=block_d, HEAD_DIM=d, num_warps=4, maxnreg=cfg.max_registers,
    )
    for i, (k, v, m) in enumerate(zip(keys, values, masks)):
        tk = k.shape[1]
        cmra_bwd_dkdv_kernel[_key_grid(n_prob, tk, cfg)](
            q, *q.stride(), dout, *dout.stride(), lse, delta,
            k, *k.stride(), v, *v.stride(),
            k if m is None else m, *((0, 0) if m is None else m.stride()),
            dks[i], *dks[i].stride(), dvs[i], *dvs[i].stride(),
            h, tq, tk, n_prob, qk_scale, scale,
            HAS_MASK=m is not None, PACK=cfg.pack, BLOCK_M=cfg.bwd_block_m, BLOCK_N=cfg.bwd_block_n,
            BLOCK_D=block_d, HEAD_DIM=d, PREC=prec, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
            maxnreg=cfg.max_registers,
        )
    grid = _row_grid(n_prob, tq, cfg)
    groups = _groups(len(keys))
    total = None
    for g in groups:
        # More sources than one launch takes: each group writes an fp32 partial dQ, summed in fp32
        # in a fixed order (deterministic), rounded to the input dtype once at the end.
        partial = dq if len(groups) == 1 else _buffer(dq.shape, torch.float32, dq.device)
        slots, has = _src_slots([keys[i] for i in g], [values[i] for i in g], [masks[i] for i in g])
        cmra_bwd_dq_kernel[grid](
            q, *q.stride(), dout, *dout.stride(), partial, *partial.stride(), lse, delta, *slots,
            h, tq, n_prob, qk_scale, scale,
            NUM_SRC=len(g), HAS_M0=has[0], HAS_M1=has[1], HAS_M2=has[2], HAS_M3=has[3],
            PACK=cfg.pack, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=block_d, HEAD_DIM=d,
            PREC=prec, num_warps=cfg.num_warps, num_stages=cfg.num_stages, maxnreg=cfg.max_registers,
        )
        total = partial if total is None else total.add_(partial)
    if len(groups) > 1:
        dq.copy_(total)
    return [dq, *dks, *dvs]


# ----------------------------------------------------------------------------- torch.library ops


@torch.library.custom_op("avattn::cmra_fwd", mutates_args=())
def cmra_fwd(
    q: Tensor, keys: list[Tensor], values: list[Tensor], masks: list[Tensor | None], scale: float
) -> tuple[Tensor, Tensor]:
    """(out, lse): out (B, Tq, H, Dh) in q's dtype; lse fp32 (B, H, Tq) in **base 2**:
    ``lse = log2(sum_k 2**(scale * log2(e) * q.k))``, i.e. the natural log-sum-exp of the scaled
    scores times log2(e) (divide by log2(e) = 1.4427 to compare with ``torch.logsumexp``);
    +inf on rows whose keys are all padded."""
    return cmra_fwd_impl(q, keys, values, masks, scale)


@cmra_fwd.register_fake
def _(q, keys, values, masks, scale):
    b, tq, h, d = q.shape
    return q.new_empty((b, tq, h, d)), q.new_empty((b, h, tq), dtype=torch.float32)


@torch.library.custom_op("avattn::cmra_bwd", mutates_args=())
def cmra_bwd(
    dout: Tensor, q: Tensor, keys: list[Tensor], values: list[Tensor], masks: list[Tensor | None],
    out: Tensor, lse: Tensor, scale: float,
) -> list[Tensor]:
    return cmra_bwd_impl(dout, q, keys, values, masks, out, lse, scale)


@cmra_bwd.register_fake
def _(dout, q, keys, values, masks, out, lse, scale):
    fresh = lambda t: torch.empty_like(t, memory_format=torch.contiguous_format)  # noqa: E731
    return [fresh(q), *[fresh(k) for k in keys], *[fresh(v) for v in values]]


def _setup_context(ctx, inputs, output):
    q, keys, values, masks, scale = inputs
    out, lse = output
    ctx.n_src = len(keys)
    ctx.scale = scale
    ctx.masks_are_tensors = all(m is not None for m in masks)
    ctx.save_for_backward(q, out, lse, *keys, *values, *masks)
    ctx.mark_non_differentiable(lse)


def _backward(ctx, grad_out, grad_lse):
    n = ctx.n_src
    q, out, lse, *rest = ctx.saved_tensors
    keys, values, masks = rest[:n], rest[n:2 * n], rest[2 * n:]
    grads = cmra_bwd(grad_out, q, list(keys), list(values), list(masks), out, lse, ctx.scale)
    # torch.library flattens a Tensor?[] argument as a list only when it holds no None.
    mask_grad = [None] * n if ctx.masks_are_tensors else None
    return grads[0], list(grads[1:1 + n]), list(grads[1 + n:]), mask_grad, None


cmra_fwd.register_autograd(_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------- public interface


def why_not(query: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor],
            key_padding_masks: Sequence[Tensor | None] | None) -> str | None:
    """None if the fused kernels can serve this call, else a sentence saying why not."""
    return _device_why_not(query) or _shape_why_not(query, keys, values, key_padding_masks)


def _device_why_not(query: Tensor) -> str | None:
    """Why the kernels cannot run on this tensor's device (or, under the interpreter, in its dtype)."""
    dev = query.device.type
    if dev == "cpu" and not INTERPRETED:
        return ("the Triton kernels were compiled for the GPU (TRITON_INTERPRET=1 was not set when "
                "avattn.kernels was first imported), so they cannot run on CPU tensors")
    if dev not in ("cpu", "cuda"):
        return f"the Triton kernels run on CUDA tensors, got device {query.device}"
    if INTERPRETED and query.dtype == torch.bfloat16:
        return "the Triton interpreter (TRITON_INTERPRET=1) has no bfloat16 dot; use float16 or float32 there"
    return None


def _shape_why_not(query: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor],
                   key_padding_masks: Sequence[Tensor | None] | None) -> str | None:
    """Why the kernels cannot serve these dtypes, head dim, strides, lengths or masks (any device)."""
    if query.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return f"the Triton kernels take float16/bfloat16/float32, got {query.dtype}"
    d = query.shape[-1]
    if not 16 <= d <= 128:
        return f"the Triton kernels support head dims 16..128, got {d}"
    if len(keys) == 0 or len(keys) != len(values):
        return f"the Triton kernels need one value tensor per key tensor, got {len(keys)} keys and {len(values)} values"
    tensors = [query, *keys, *values]
    for t in tensors:
        if t.dtype != query.dtype:
            return f"the Triton kernels need keys and values in the query's dtype {query.dtype}, got {t.dtype}"
        # Offsets inside one batch item are 32-bit (the batch offset is 64-bit).
        span = sum((s - 1) * abs(st) for s, st in zip(t.shape[1:], t.stride()[1:]))
        if span > _INT32_MAX:
            return f"the Triton kernels need each batch item to span < 2**31 elements, a tensor of shape {tuple(t.shape)} spans {span}"
    for i, t in enumerate(tensors):
        if any(st < 0 for st in t.stride()):
            return f"the Triton kernels cannot take negative strides (tensor {i} has strides {t.stride()})"
    b, tq, h, _ = query.shape
    if b * h * max(tq, *(k.shape[1] for k in keys)) > _INT32_MAX:
        return f"the Triton kernels index rows with 32-bit integers; B*H*T = {b * h * max(tq, *(k.shape[1] for k in keys))} is too large"
    # The tiles of every architecture, so that the answer needs no device query (it runs under torch.compile).
    launches = []
    for arch in ARCHS:
        cfg = choose_config(tq, [k.shape[1] for k in keys], query.shape[-1], query.dtype, arch)
        launches.append(("forward and dQ", _row_grid(b * h, tq, cfg), f"{tq} query steps"))
        launches += [(f"dK/dV of source {i}", _key_grid(b * h, k.shape[1], cfg), f"{k.shape[1]} key steps")
                     for i, k in enumerate(keys)]
    for what, grid, steps in launches:
        for axis, (n, limit) in enumerate(zip(grid, _GRID_LIMITS)):
            if n > limit:
                return (f"the Triton {what} launch needs {n} blocks on grid axis {axis} ({steps}, B*H = {b * h}), "
                        f"more than the limit {limit}")
    if key_padding_masks is not None:
        for i, m in enumerate(key_padding_masks):
            if m is not None and (m.dtype != torch.bool or m.dim() != 2):
                return f"key_padding_masks[{i}] must be a bool (B, Tk) tensor for the Triton kernels, got {m.dtype} {tuple(m.shape)}"
    return None


def cmra_attention_triton(
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    key_padding_masks: Sequence[Tensor | None] | None = None,
    scale: float | None = None,
) -> Tensor:
    """softmax(scale q k^T) v over all sources, read in place; same contract as ``reference_attention``.

    query (B, Tq, H, Dh); keys[i], values[i] (B, Tk_i, H, Dh); key_padding_masks None or one
    None / bool (B, Tk_i) per source (True = padded). Returns (B, Tq, H, Dh), contiguous.
    Differentiable in query, keys and values; rows with every key padded give zeros and zero grads.

    Checks its inputs first: shapes, dtypes and ``scale`` as ``cmra_attention`` does (ValueError /
    TypeError naming the argument), then ``why_not``, whose reason it raises as a RuntimeError,
    the error ``cmra_attention(..., backend="triton")`` raises for the same call.
    """
    validate_attention_inputs(query, keys, values, key_padding_masks)
    scale, _ = validate_options(scale, 0.0, False)
    reason = why_not(query, keys, values, key_padding_masks)
    if reason is not None:
        raise RuntimeError(reason)
    return cmra_attention_triton_checked(query, keys, values, key_padding_masks, scale)


def cmra_attention_triton_checked(
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    key_padding_masks: Sequence[Tensor | None] | None,
    scale: float | None,
) -> Tensor:
    """``cmra_attention_triton`` without its checks, for a caller that ran them (``avattn.functional``)."""
    scale = query.shape[-1] ** -0.5 if scale is None else float(scale)
    masks = [None] * len(keys) if key_padding_masks is None else list(key_padding_masks)
    out, _ = cmra_fwd(query, list(keys), list(values), masks, scale)
    return out
