"""Compile the fused kernels for a GPU architecture on a machine without a GPU.

The Triton interpreter (``TRITON_INTERPRET=1``) checks the kernels' arithmetic but not that
they compile: it accepts dot shapes, layouts, bfloat16 and shared-memory budgets that the
real compiler may refuse. This tool runs the launchers of ``avattn.kernels.cmra_op`` on CPU
tensors with every kernel replaced by a recorder, then compiles each distinct recorded launch
(its dtypes, constexprs, warps and stages, exactly as the launcher chose them) with
``triton.compile`` for ``GPUTarget("cuda", ARCH, 32)``, down to a cubin with Triton's bundled
``ptxas``, and checks the shared memory each kernel needs against the architecture's limit
and that no kernel spills registers (stack bytes per thread, read from the cubin with the
bundled ``cuobjdump``, must be 0). Arguments are specialized as the JIT does on a GPU (ints
equal to 1 become constants; ints and 16-byte-aligned pointers get ``tt.divisibility=16``;
``do_not_specialize`` arguments are left alone), so the code is what a GPU would run.

    python tests/triton_compile_check.py [--arch 90] [--scenario ave-bf16 ...]
    python tests/triton_compile_check.py --keys --batch 7 [--scenario ...]   # specialization keys only, no compile

Must run in a process where Triton was imported without ``TRITON_INTERPRET=1``
(``tests/test_triton_compile.py`` starts one). Prints one line per compiled kernel.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Opt-in shared memory per block (bytes) of the architectures we target.
SMEM_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}


@dataclass(frozen=True)
class Scenario:
    batch: int
    tq: int
    tks: tuple[int, ...]
    heads: int
    head_dim: int
    dtype: torch.dtype
    masked: bool = False


SCENARIOS = {
    # AVE: Tq = Tk = 10, two sources; packed forward and the one-program backward.
    "ave-bf16": Scenario(8, 10, (10, 10), 4, 64, torch.bfloat16),
    "ave-fp16": Scenario(8, 10, (10, 10), 4, 64, torch.float16),
    "ave-fp32": Scenario(8, 10, (10, 10), 4, 64, torch.float32),
    "ave-bf16-masked": Scenario(8, 10, (10, 10), 4, 64, torch.bfloat16, masked=True),
    # Short memory at head dim 128 (the packed backward's largest tiles), four sources.
    "ave-bf16-d128": Scenario(8, 10, (10, 10, 10, 10), 2, 128, torch.bfloat16),
    "ave-fp16-d128-masked": Scenario(8, 10, (10, 10), 2, 128, torch.float16, masked=True),
    "ave-fp32-d128-masked": Scenario(8, 10, (10, 10), 2, 128, torch.float32, masked=True),
    # Long memory: FA2-style loops, separate delta / dK-dV / dQ kernels, masked tails.
    "long-bf16-masked": Scenario(2, 300, (257, 1000), 2, 128, torch.bfloat16, masked=True),
    "long-fp16-d64": Scenario(2, 300, (257, 1000), 4, 64, torch.float16),
    "long-fp16-d128": Scenario(2, 300, (257, 1000), 2, 128, torch.float16),
    "long-fp32-d64": Scenario(2, 300, (257, 1000), 4, 64, torch.float32),
    # fp32 at head dim 128: the largest tiles in registers and shared memory.
    "long-fp32-d128": Scenario(2, 300, (257, 1000), 2, 128, torch.float32, masked=True),
    # Five sources: two launches merged through the log-sum-exp; head dim 16.
    "five-sources-fp16": Scenario(4, 7, (3, 5, 2, 6, 9), 2, 16, torch.float16, masked=True),
    # Six sources at head dim 128 in bf16 (fp32 partial dQ buffers).
    "six-sources-bf16-d128": Scenario(4, 10, (10, 10, 10, 10, 10, 10), 2, 128, torch.bfloat16, masked=True),
}

_KERNELS = ("cmra_fwd_kernel", "cmra_bwd_packed_kernel", "cmra_delta_kernel", "cmra_bwd_dkdv_kernel",
            "cmra_bwd_dq_kernel")


def record_launches(scenario: Scenario, batch: int | None = None, arch: int = 90) -> list[tuple]:
    """(kernel, grid, args, kwargs) of every launch of one forward and one backward call, with the
    tiles the launchers choose for a GPU of compute capability ``arch`` (major * 10 + minor)."""
    from avattn.kernels import cmra_fwd, cmra_op

    if cmra_fwd.INTERPRETED:
        raise RuntimeError("avattn.kernels was imported with TRITON_INTERPRET=1; run this in a fresh process without it")
    calls: list[tuple] = []

    class _Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: calls.append((self.kernel, grid, args, kwargs))

    s = scenario if batch is None else replace(scenario, batch=batch)
    q = torch.randn(s.batch, s.tq, s.heads, s.head_dim, dtype=s.dtype)
    keys = [torch.randn(s.batch, t, s.heads, s.head_dim, dtype=s.dtype) for t in s.tks]
    values = [torch.randn(s.batch, t, s.heads, s.head_dim, dtype=s.dtype) for t in s.tks]
    masks = [torch.rand(s.batch, t) < 0.2 if s.masked else None for t in s.tks]
    saved = {name: getattr(cmra_op, name) for name in (*_KERNELS, "device_arch")}
    try:
        for name in _KERNELS:
            setattr(cmra_op, name, _Recorder(saved[name]))
        cmra_op.device_arch = lambda device: arch
        out, lse = cmra_op.cmra_fwd_impl(q, keys, values, masks, s.head_dim ** -0.5)
        cmra_op.cmra_bwd_impl(out, q, keys, values, masks, out, lse, s.head_dim ** -0.5)
    finally:
        for name, kernel in saved.items():
            setattr(cmra_op, name, kernel)
    return calls


def _specialize(kernel, backend, args, kwargs):
    """Signature, constexprs, attributes and options exactly as ``kernel[grid](...)`` derives them
    (ints equal to 1 become constants, ints and pointers divisible by 16 get ``tt.divisibility``)."""
    from triton.runtime.jit import create_function_from_signature

    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    return kernel._pack_args(backend, kwargs, bound, specialization, options)


def _resource_usage(cubin: bytes) -> dict:
    """Registers and stack (spill) bytes per thread, read from the cubin by Triton's bundled cuobjdump."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not tool.exists():
        return {}
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+) STACK:(\d+)", text)
    return {"registers": int(m.group(1)), "stack": int(m.group(2))} if m else {}


def _backend(arch: int):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend

    target = GPUTarget("cuda", arch, 32)
    return target, make_backend(target)


def _key(kernel, options, signature, constexprs, attrs) -> tuple:
    """What makes the JIT compile a new kernel: argument types, constants (constexprs and ints
    equal to 1), divisibility attributes and options."""
    return (kernel.__name__, repr(sorted(signature.items())), repr(sorted(constexprs.items(), key=repr)),
            repr(attrs), repr(sorted(options.__dict__.items(), key=repr)))


def specialization_keys(name: str, batch: int | None = None, arch: int = 90) -> list[tuple]:
    """The distinct specialization keys of a scenario's launches (optionally at another batch size)."""
    _, backend = _backend(arch)
    keys = []
    for kernel, _grid, args, kwargs in record_launches(SCENARIOS[name], batch, arch):
        key = _key(kernel, *_specialize(kernel, backend, args, dict(kwargs)))
        if key not in keys:
            keys.append(key)
    return keys


def compile_scenario(name: str, arch: int) -> list[dict]:
    """Compile every distinct launch of a scenario for sm_{arch}; one dict per kernel."""
    import triton
    from triton.compiler import ASTSource

    target, backend = _backend(arch)
    seen, results = set(), []
    for kernel, grid, args, kwargs in record_launches(SCENARIOS[name], arch=arch):
        options, signature, constexprs, attrs = _specialize(kernel, backend, args, dict(kwargs))
        key = _key(kernel, options, signature, constexprs, attrs)
        if key in seen:
            continue
        seen.add(key)
        compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target,
                                  options=options.__dict__)
        names = {(i,): n for i, n in enumerate(kernel.arg_names)}
        tiles = {names[k]: v for k, v in constexprs.items() if names.get(k) in ("PACK", "BLOCK_M", "BLOCK_N", "BLOCK_D")}
        results.append({
            "kernel": kernel.__name__, "grid": tuple(grid), "shared": compiled.metadata.shared,
            "cubin_bytes": len(compiled.asm["cubin"]), "num_warps": options.num_warps,
            "num_stages": options.num_stages, **tiles, **_resource_usage(compiled.asm["cubin"]),
        })
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, default=90, choices=sorted(SMEM_LIMIT))
    p.add_argument("--scenario", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    p.add_argument("--keys", action="store_true", help="print the JIT specialization keys instead of compiling")
    p.add_argument("--batch", type=int, default=None, help="with --keys: the batch size to record (default: the scenario's)")
    args = p.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    if args.keys:
        for name in args.scenario:
            for key in specialization_keys(name, args.batch, args.arch):
                print("KEY", name, *key, sep="\t", flush=True)
        return 0
    failures = 0
    for name in args.scenario:
        for r in compile_scenario(name, args.arch):
            ok = r["shared"] <= SMEM_LIMIT[args.arch] and r["cubin_bytes"] > 0 and r.get("stack", 1) == 0
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} sm_{args.arch} {name:<18} {r['kernel']:<23} grid={r['grid']} "
                  f"shared={r['shared']}B (limit {SMEM_LIMIT[args.arch]}) cubin={r['cubin_bytes']}B "
                  + " ".join(f"{k}={r[k]}" for k in ("PACK", "BLOCK_M", "BLOCK_N", "BLOCK_D", "num_warps", "num_stages", "registers", "stack")
                            if k in r),
                  flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
