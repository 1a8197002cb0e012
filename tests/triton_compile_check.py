"""Compile the fused kernels for a GPU architecture on a machine without a GPU.

The Triton interpreter (``TRITON_INTERPRET=1``) checks the kernels' arithmetic but not that
they compile: it accepts dot shapes, layouts, bfloat16 and shared-memory budgets that the
real compiler may refuse. This tool runs *drivers* (code that calls the fused attention) on CPU
tensors with every kernel of ``avattn.kernels.cmra_op`` replaced by a recorder, then compiles each
distinct launch (its dtypes, constexprs, warps and stages, exactly as the launcher chose them) with
``triton.compile`` for ``GPUTarget("cuda", ARCH, 32)``, down to a cubin with Triton's bundled
``ptxas``, and checks the shared memory each kernel needs against the architecture's limit
and that no kernel spills registers (stack bytes per thread, read from the cubin with the
bundled ``cuobjdump``, must be 0). Arguments are specialized as the JIT does on a GPU (ints
equal to 1 become constants; ints and 16-byte-aligned pointers get ``tt.divisibility=16``;
``do_not_specialize`` arguments are left alone), so the code is what a GPU would run.

The drivers (``--source``, default all) are every launched variant: ``scenarios`` (the shapes
below), ``gpu-tests`` (every test of tests/test_triton_attention_gpu.py, from its own tables) and
the GPU benchmarks and the CMRAN step (``benchmarks/kernel_launches.py``: bench-attention,
bench-sublayer, paper, cmran-fp32, cmran-bf16), run small (``--size small``; ``--compare-sizes``
checks that small and real sizes launch the same variants).

    python tests/triton_compile_check.py [--arch 90|80] [--source ...] [--only LABEL ...] [--scenario ...]
    python tests/triton_compile_check.py --keys [--batch 7 --scenario ...]   # specialization keys only, no compile
    python tests/triton_compile_check.py --compare-sizes [--source paper ...] # small vs real sizes, no compile

Must run in a process where Triton was imported without ``TRITON_INTERPRET=1``
(``tests/test_triton_compile.py`` starts one). Prints which Triton and ptxas it compiles with,
one line per kernel variant (tiles, registers, stack bytes, shared memory, the drivers that launch
it), and a summary; exits 1 if any variant fails.
"""

from __future__ import annotations

import argparse
import contextlib
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

# Where the launches come from: the scenarios above, every test of tests/test_triton_attention_gpu.py,
# and every call of the GPU benchmarks and the CMRAN step (benchmarks/kernel_launches.py).
BENCH_SOURCES = ("bench-attention", "bench-sublayer", "paper", "cmran-fp32", "cmran-bf16")
SOURCES = ("scenarios", "gpu-tests", *BENCH_SOURCES)


def _scenario_driver(s: Scenario, batch: int | None = None):
    """One forward and one backward of the launchers on a scenario's inputs (batch: another batch size)."""
    s = s if batch is None else replace(s, batch=batch)

    def run(device="cpu") -> None:
        from avattn.kernels import cmra_op

        q = torch.randn(s.batch, s.tq, s.heads, s.head_dim, dtype=s.dtype, device=device)
        keys = [torch.randn(s.batch, t, s.heads, s.head_dim, dtype=s.dtype, device=device) for t in s.tks]
        values = [torch.randn(s.batch, t, s.heads, s.head_dim, dtype=s.dtype, device=device) for t in s.tks]
        masks = [torch.rand(s.batch, t, device=device) < 0.2 if s.masked else None for t in s.tks]
        out, lse = cmra_op.cmra_fwd_impl(q, keys, values, masks, s.head_dim ** -0.5)
        cmra_op.cmra_bwd_impl(out, q, keys, values, masks, out, lse, s.head_dim ** -0.5)

    return run


def drivers(sources, scenarios=None, size: str = "small", batch: int | None = None) -> dict:
    """label -> fn(device) making the launches of the chosen sources (see SOURCES)."""
    found = {}
    if "scenarios" in sources:
        for name in scenarios or SCENARIOS:
            found[f"scenario:{name}"] = _scenario_driver(SCENARIOS[name], batch)
    if "gpu-tests" in sources:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import test_triton_attention_gpu as gpu_tests

        found.update({f"gpu-test:{k}": fn for k, fn in gpu_tests.launch_drivers().items()})
    from benchmarks import kernel_launches

    for name in BENCH_SOURCES:
        if name in sources:
            found[name] = lambda device="cpu", fn=kernel_launches.DRIVERS[name]: fn(device, size)
    return found


@dataclass
class Variant:
    """One distinct compiled kernel: the first launch that needs it, and every driver that launches it."""

    kernel: object
    grid: tuple
    args: tuple
    kwargs: dict
    spec: tuple  # (options, signature, constexprs, attrs) as the JIT derives them
    users: list


class Inventory:
    """The distinct kernel variants launched by drivers run under ``recording``, keyed like the JIT."""

    def __init__(self, arch: int) -> None:
        self.arch = arch
        self.target, self.backend = _backend(arch)
        self.variants: dict[tuple, Variant] = {}
        self.launches = 0
        self.label = ""

    def add(self, kernel, grid, args, kwargs) -> None:
        self.launches += 1
        spec = _specialize(kernel, self.backend, args, dict(kwargs))
        key = _key(kernel, *spec)
        if key not in self.variants:
            self.variants[key] = Variant(kernel, tuple(grid), args, dict(kwargs), spec, [])
        users = self.variants[key].users
        if self.label not in users:
            users.append(self.label)


@contextlib.contextmanager
def recording(inventory: Inventory):
    """Launchers on CPU tensors record their launches into ``inventory`` instead of running kernels,
    with the tiles they choose for ``inventory.arch``; output buffers are zeros. The fused backend
    accepts CPU tensors meanwhile (its shape checks still run), so that layers reach it too."""
    from avattn.functional import backends
    from avattn.kernels import cmra_fwd, cmra_op

    if cmra_fwd.INTERPRETED:
        raise RuntimeError("avattn.kernels was imported with TRITON_INTERPRET=1; run this in a fresh process without it")

    class _Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: inventory.add(self.kernel, grid, args, kwargs)

    backends._triton_load_error()
    saved = {name: getattr(cmra_op, name) for name in (*_KERNELS, "device_arch", "_device_why_not", "_buffer")}
    saved_why_not = backends.WHY_NOT["triton"]
    try:
        for name in _KERNELS:
            setattr(cmra_op, name, _Recorder(saved[name]))
        cmra_op.device_arch = lambda device: inventory.arch
        cmra_op._device_why_not = lambda query: None
        cmra_op._buffer = lambda shape, dtype, device: torch.zeros(shape, dtype=dtype, device=device)
        backends.WHY_NOT["triton"] = lambda q, k, v, m, p, w: (
            backends._generic_why_not("triton", q, p, w) or cmra_op.why_not(q, k, v, m))
        yield inventory
    finally:
        for name, value in saved.items():
            setattr(cmra_op, name, value)
        backends.WHY_NOT["triton"] = saved_why_not


def collect(found: dict, arch: int) -> Inventory:
    """Run every driver under ``recording``; the distinct kernel variants they launch."""
    inventory = Inventory(arch)
    with recording(inventory):
        for label, run in found.items():
            inventory.label = label
            torch.manual_seed(0)
            run("cpu")
    return inventory


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


def _types(signature: dict, kernel) -> str:
    """The element type of the kernel's first pointer (the query's or O's dtype), e.g. bf16."""
    first = next(iter(signature.values()), "")
    return str(first).lstrip("*")


def compile_variant(v: Variant, arch: int) -> dict:
    """Compile one variant for sm_{arch} down to a cubin; its tiles, resources and users."""
    import triton
    from triton.compiler import ASTSource

    target, _ = _backend(arch)
    options, signature, constexprs, attrs = v.spec
    compiled = triton.compile(ASTSource(v.kernel, signature, constexprs, attrs), target=target,
                              options=options.__dict__)
    names = {(i,): n for i, n in enumerate(v.kernel.arg_names)}
    tiles = {names[k]: c for k, c in constexprs.items() if names.get(k) in ("PACK", "BLOCK_M", "BLOCK_N", "BLOCK_D")}
    return {
        "kernel": v.kernel.__name__, "dtype": _types(signature, v.kernel), "grid": v.grid,
        "shared": compiled.metadata.shared, "cubin_bytes": len(compiled.asm["cubin"]),
        "num_warps": options.num_warps, "num_stages": options.num_stages, **tiles,
        **_resource_usage(compiled.asm["cubin"]), "users": list(v.users),
    }


def passes(r: dict, arch: int) -> bool:
    """Fits the architecture's shared memory, compiled, and spills nothing (stack 0; unknown fails)."""
    return r["shared"] <= SMEM_LIMIT[arch] and r["cubin_bytes"] > 0 and r.get("stack", 1) == 0


def report_line(r: dict, arch: int) -> str:
    shown = " ".join(f"{k}={r[k]}" for k in ("PACK", "BLOCK_M", "BLOCK_N", "BLOCK_D", "num_warps", "num_stages",
                                             "registers", "stack") if k in r)
    users = r["users"][:3] + ([f"+{len(r['users']) - 3} more"] if len(r["users"]) > 3 else [])
    return (f"{'ok  ' if passes(r, arch) else 'FAIL'} sm_{arch} {r['kernel']:<23} {r['dtype']:<5} {shown} "
            f"shared={r['shared']}B grid={r['grid']} used by {', '.join(users)}")


def toolchain() -> str:
    """Which Triton (and its bundled ptxas) this process compiles with."""
    import triton

    try:
        from triton.backends.nvidia.compiler import get_ptxas_version

        ptxas = re.search(r"release ([\d.]+)", get_ptxas_version(90))
        ptxas = ptxas.group(1) if ptxas else "unknown"
    except Exception as exc:  # noqa: BLE001 - report, do not fail: compiling will say what is wrong
        ptxas = f"unavailable ({type(exc).__name__})"
    return f"Triton {triton.__version__} ({Path(triton.__file__).parent}), ptxas {ptxas}, torch {torch.__version__}"


def specialization_keys(found: dict, arch: int = 90) -> dict[tuple, list[str]]:
    """The distinct JIT specialization keys of the drivers' launches, with the drivers using each."""
    return {key: v.users for key, v in collect(found, arch).variants.items()}


def compare_sizes(sources, arch: int) -> int:
    """The benchmark drivers launch the same kernel variants small (as the GPU tests run them) and real."""
    failures = 0
    for name in sources:
        if name not in BENCH_SOURCES:
            continue
        small = set(specialization_keys(drivers([name], size="small"), arch))
        real = set(specialization_keys(drivers([name], size="real"), arch))
        ok = small == real
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {len(real)} kernel variants at the real sizes, "
              f"{len(small)} small, {len(small & real)} in both", flush=True)
    return failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, default=90, choices=sorted(SMEM_LIMIT))
    p.add_argument("--source", nargs="*", default=list(SOURCES), choices=list(SOURCES),
                   help="where the launches come from (default: all)")
    p.add_argument("--scenario", nargs="*", default=None, choices=list(SCENARIOS),
                   help="only these scenarios (implies --source scenarios)")
    p.add_argument("--only", nargs="*", default=None, help="only the drivers whose label contains one of these")
    p.add_argument("--size", default="small", choices=("small", "real"),
                   help="sizes of the benchmark drivers (small: the same variants, see --compare-sizes)")
    p.add_argument("--keys", action="store_true", help="print the JIT specialization keys instead of compiling")
    p.add_argument("--batch", type=int, default=None, help="with --keys: the scenarios' batch size (default: theirs)")
    p.add_argument("--compare-sizes", action="store_true",
                   help="check that the benchmark drivers launch the same variants small and real; no compile")
    args = p.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    sources = ["scenarios"] if args.scenario else args.source
    print(f"triton_compile_check: {toolchain()}; target sm_{args.arch}; sources {' '.join(sources)}", flush=True)
    if args.compare_sizes:
        return 1 if compare_sizes(sources, args.arch) else 0
    found = drivers(sources, args.scenario, args.size, args.batch)
    if args.only:
        found = {label: fn for label, fn in found.items() if any(part in label for part in args.only)}
    if args.keys:
        for key, users in specialization_keys(found, args.arch).items():
            print("KEY", *key, "USERS", *users, sep="\t", flush=True)
        return 0
    inventory = collect(found, args.arch)
    failed = []
    for v in inventory.variants.values():
        r = compile_variant(v, args.arch)
        print(report_line(r, args.arch), flush=True)
        if not passes(r, args.arch):
            failed.append(r)
    import triton

    print(f"sm_{args.arch}, Triton {triton.__version__}: {len(inventory.variants)} kernel variants from "
          f"{inventory.launches} launches of {len(found)} drivers; {len(failed)} failed"
          + "".join(f"\n  FAILED {r['kernel']} {r['dtype']} stack={r.get('stack')} shared={r['shared']}B "
                    f"used by {', '.join(r['users'])}" for r in failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
