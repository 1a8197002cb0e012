"""The fused kernels at the paper's shape on a GPU, and what the compiler made of them.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim.

    python benchmarks/gpu_paper_check.py            # the check (needs a CUDA GPU)
    python benchmarks/gpu_paper_check.py --env      # environment report only (any machine)
    python benchmarks/gpu_paper_check.py --cpu-smoke  # the check's plumbing on CPU (interpreter, fp16, B=6)

The check: AVE shape of CMRAN (B = 4096 videos, T = 10 query steps, two memory sources of 10
steps, H = 4 heads, Dh = 64), bfloat16. The output and every gradient (dq, dk_i, dv_i) of
``cmra_attention_triton`` are compared with ``reference_attention`` run in fp32, beside torch's
own bfloat16 error (``reference_attention`` run in bf16), under the flash-attention rule of
``benchmarks/bench_attention_gpu.py`` (error <= 2x torch's own + atol). Then the same op at
B = 4093 must reuse the compiled kernels (no new specialization for a new batch size). Last,
one line per compiled kernel variant: registers and spilled bytes per thread, shared memory.
Exit status: 0 when everything passed, 1 when a check failed, 2 without a CUDA GPU (and no --env).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

B, T, SOURCES, H, DH = 4096, 10, 2, 4, 64
KERNELS = ("cmra_fwd_kernel", "cmra_bwd_packed_kernel", "cmra_delta_kernel", "cmra_bwd_dkdv_kernel", "cmra_bwd_dq_kernel")


def copy_bandwidth_gbs(nbytes: int = 1 << 30, reps: int = 20) -> float:
    """Device-to-device copy of ``nbytes`` (read + write counted), median over ``reps`` CUDA-event timings."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").normal_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * nbytes / sorted(times)[len(times) // 2] / 1e9


def environment() -> int:
    print(f"python {platform.python_version()} on {platform.machine()}, torch {torch.__version__} (CUDA {torch.version.cuda})")
    try:
        import triton

        print(f"triton {triton.__version__}")
    except ImportError as exc:
        print(f"triton: not importable ({exc})")
    import avattn

    print(f"avattn from {Path(avattn.__file__).parent}")
    if not torch.cuda.is_available():
        print("no CUDA GPU: torch.cuda.is_available() is False")
        return 0
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs")
    print(f"device-to-device copy bandwidth (1 GiB, median of 20): {copy_bandwidth_gbs():.0f} GB/s")
    return 0


def _run(fn, tensors, dtype, dout):
    """[out, dq, dk_0, dk_1, dv_0, dv_1] of fn on leaf copies of ``tensors`` in ``dtype``."""

    leaves = [t.detach().to(dtype).requires_grad_(True) for t in tensors]
    q, ks, vs = leaves[0], leaves[1:1 + SOURCES], leaves[1 + SOURCES:]
    out = fn(q, ks, vs)
    out.backward(dout.to(out.dtype))
    return [out.detach()] + [t.grad for t in leaves]


def compiled_kernels() -> list[dict]:
    """Every compiled variant of the fused kernels in this process (JIT caches, or a scan of live objects)."""
    from avattn.kernels import cmra_op

    found = []
    try:
        for name in KERNELS:
            fn = getattr(cmra_op, name)
            caches = getattr(fn, "device_caches", None)  # triton >= 3.2: device -> (kernel cache, ...)
            if caches:
                for entry in caches.values():
                    cache = entry[0] if isinstance(entry, tuple) else entry
                    found += [(name, k) for k in cache.values()]
            elif isinstance(getattr(fn, "cache", None), dict):  # older triton: device -> {key: kernel}
                for cache in fn.cache.values():
                    found += [(name, k) for k in cache.values()]
    except (AttributeError, TypeError):  # another layout of the JIT cache: fall back to the scan
        found = []
    if not found:
        found = [(getattr(k, "name", "?"), k) for k in gc.get_objects() if type(k).__name__ == "CompiledKernel"]
        found = [(n, k) for n, k in found if n in KERNELS]
    rows = []
    for name, k in found:
        init = getattr(k, "_init_handles", None)
        if callable(init):
            init()
        md = k.metadata
        rows.append(dict(kernel=name, registers=getattr(k, "n_regs", None), spills=getattr(k, "n_spills", None),
                         shared=getattr(md, "shared", None), warps=getattr(md, "num_warps", None),
                         stages=getattr(md, "num_stages", None)))
    return rows


def check(device: str = "cuda", dtype_name: str = "bf16", b: int = B) -> int:
    from avattn.functional.reference import reference_attention
    from avattn.kernels.cmra_op import cmra_attention_triton
    from benchmarks.bench_attention_gpu import ATOL, DTYPES, gate, gate_summary

    dtype = DTYPES[dtype_name]
    torch.manual_seed(0)
    tensors = [torch.randn(b, T, H, DH, device=device) for _ in range(1 + 2 * SOURCES)]
    dout = torch.randn(b, T, H, DH, device=device)

    def fused(q, ks, vs):
        return cmra_attention_triton(q, ks, vs, None, None)

    def reference(q, ks, vs):
        return reference_attention(q, ks, vs, None)[0]

    names = ["out", "dq"] + [f"dk{i}" for i in range(SOURCES)] + [f"dv{i}" for i in range(SOURCES)]
    got = _run(fused, tensors, dtype, dout)
    ref = _run(reference, tensors, torch.float32, dout)
    same = _run(reference, tensors, dtype, dout)
    checks = gate(names, got, same, ref, ATOL[dtype_name])
    print(f"paper shape B={b} T={T} sources={SOURCES} H={H} Dh={DH} {dtype_name} on {device}, vs fp32 reference "
          f"(rule: err <= 2 x torch's {dtype_name} err + {ATOL[dtype_name]} x max(1, max|ref|)):")
    for c in checks:
        print(f"  {c['name']:4} avattn-triton {c['err']:.3e}  torch {dtype_name} {c['torch_err']:.3e}  bound {c['bound']:.3e}  "
              f"{'ok' if c['ok'] else 'FAILED'}")
    failed = not all(c["ok"] for c in checks)
    print(f"  gate: {gate_summary(checks)}")
    del got, ref, same

    before = compiled_kernels()
    _run(fused, [t[: b - 3] for t in tensors], dtype, dout[: b - 3])
    after = compiled_kernels()
    grew = len(after) > len(before)
    print(f"batch {b - 3} after {b}: {len(before)} -> {len(after)} compiled kernel variants "
          f"({'FAILED: a new batch size compiled new kernels' if grew else 'ok, reused'})")
    failed |= grew

    print("compiled kernels (per thread: registers, spilled bytes; per block: shared memory):"
          + ("" if after else " none (Triton interpreter)" if device == "cpu" else " none found: FAILED"))
    failed |= not after and device != "cpu"
    for r in after:
        spill_note = "" if not r["spills"] else "  SPILLS"
        print(f"  {r['kernel']:23} regs {r['registers']}  spills {r['spills']}  shared {r['shared']} B  "
              f"warps {r['warps']}  stages {r['stages']}{spill_note}")
    failed |= any(r["spills"] for r in after)
    print("paper check: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="store_true", help="print versions, GPUs and copy bandwidth, then exit")
    ap.add_argument("--cpu-smoke", action="store_true", help="run the check's code on CPU under TRITON_INTERPRET=1 (fp16, B=6)")
    args = ap.parse_args(argv)
    if args.env:
        return environment()
    if args.cpu_smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported
        return check("cpu", "fp16", 6)
    if not torch.cuda.is_available():
        print("gpu_paper_check: no CUDA GPU (torch.cuda.is_available() is False); nothing to check", file=sys.stderr)
        return 2
    return check()


if __name__ == "__main__":
    sys.exit(main())
