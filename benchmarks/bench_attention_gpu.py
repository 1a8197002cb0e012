"""GPU benchmark of multi-source attention: avattn's fused Triton kernels against PyTorch.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim,
e model dim.

    python benchmarks/bench_attention_gpu.py [--quick] [--out DIR]

Two groups, each in fwd and fwd+bwd, in bf16, fp16 and fp32:
  * ``attention``: the attention core on (B, T, H, Dh) inputs, two memory sources.
    Providers: ``naive`` (cat, matmul, softmax, matmul), ``sdpa`` (cat + F.scaled_dot_product_attention),
    ``avattn-triton`` (``cmra_attention_triton``, sources read in place).
  * ``sublayer``: the whole CMRA sublayer from raw features (projections included).
    Providers: ``eager`` (avattn.CrossModalRelationAttention, backend="reference"),
    ``nn.MultiheadAttention`` (on the concatenated memory), ``avattn-sdpa``, ``avattn-triton``.
Shapes: AVE (Tq = Tk = 10, two sources, dim 256, 4 heads, B = 32, 512, 4096) and long
(two sources of T = 1024, 4096, 8192 steps, Tq = T, B = 8, 4, 2).

Each row: median ms with p20/p80 (triton.testing.do_bench), achieved GB/s on the minimum
bytes (formulas in docs/kernels.md) and as % of a device-to-device copy measured in the same
run, TFLOP/s, speedup of avattn-triton over every other provider, max |out - fp32 reference|.
Writes results.csv, results.json and results.md to --out (default runs/bench_attention_gpu)
and prints a short table last. Exits with code 2 and a message when no CUDA GPU is present.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DIM, HEADS = 256, 4
AVE_T = 10


# ----------------------------------------------------------------------------- shapes


def shapes(quick: bool) -> list[dict]:
    ave = [dict(name=f"ave-B{b}", b=b, tq=AVE_T, tks=(AVE_T, AVE_T)) for b in ((4096,) if quick else (32, 512, 4096))]
    long = [dict(name=f"long-T{t}-B{b}", b=b, tq=t, tks=(t, t)) for t, b in (((4096, 4),) if quick else ((1024, 8), (4096, 4), (8192, 2)))]
    return ave + long


# ----------------------------------------------------------------------------- roofline counts


def attention_bytes(b, tq, tks, h, d, elt, mode) -> int:
    """Minimum bytes: fwd reads Q, K_i, V_i and writes O; bwd reads Q, K_i, V_i, O, dO, writes dQ, dK_i, dV_i."""
    unit = b * h * d * elt
    fwd = unit * (2 * tq + 2 * sum(tks))
    bwd = unit * (4 * tq + 4 * sum(tks)) + 2 * 4 * b * h * tq  # + fp32 LSE read twice-ish
    return fwd if mode == "fwd" else fwd + bwd


def attention_flops(b, tq, tks, h, d, mode) -> int:
    """QK^T and PV: 4 B H Tq sum(Tk) Dh forward; backward counted as 2.5x forward (FlashAttention-2 convention)."""
    fwd = 4 * b * h * tq * sum(tks) * d
    return fwd if mode == "fwd" else int(3.5 * fwd)


def sublayer_bytes(b, tq, tks, e, elt, mode) -> int:
    """fwd: read query, memory, 4 E^2 weights, write output; bwd: read dOut, inputs and weights, write dInputs, dWeights."""
    tk = sum(tks)
    fwd = elt * (b * (tq + tk) * e + 4 * e * e + b * tq * e)
    bwd = elt * (b * tq * e + b * (tq + tk) * e + 4 * e * e + b * (tq + tk) * e + 4 * e * e)
    return fwd if mode == "fwd" else fwd + bwd


def sublayer_flops(b, tq, tks, e, mode) -> int:
    tk = sum(tks)
    proj = 2 * b * tq * e * e * 2 + 2 * b * tk * e * 2 * e  # q and out projections, kv projection
    attn = 4 * b * tq * tk * e
    return proj + attn if mode == "fwd" else 3 * proj + int(3.5 * attn)


# ----------------------------------------------------------------------------- providers: attention core


def naive_attention(q, ks, vs, scale):
    k = torch.cat(ks, 1).transpose(1, 2)  # (b, h, k, d)
    v = torch.cat(vs, 1).transpose(1, 2)
    s = torch.matmul(q.transpose(1, 2), k.transpose(-1, -2)) * scale
    return torch.matmul(s.softmax(-1), v).transpose(1, 2)


def sdpa_attention(q, ks, vs, scale):
    k = torch.cat(ks, 1).transpose(1, 2)
    v = torch.cat(vs, 1).transpose(1, 2)
    return F.scaled_dot_product_attention(q.transpose(1, 2), k, v, scale=scale).transpose(1, 2)


def triton_attention(q, ks, vs, scale):
    from avattn.kernels.cmra_op import cmra_attention_triton

    return cmra_attention_triton(q, ks, vs, None, scale)


ATTENTION = {"naive": naive_attention, "sdpa": sdpa_attention, "avattn-triton": triton_attention}


# ----------------------------------------------------------------------------- providers: sublayer


def make_sublayers(dtype, device):
    try:
        from avattn import CrossModalRelationAttention
    except ImportError:
        CrossModalRelationAttention = None
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(DIM, HEADS, batch_first=True, device=device, dtype=torch.float32)
    layers = {}
    if CrossModalRelationAttention is not None:
        ref = CrossModalRelationAttention.from_multihead_attention(mha, backend="reference")
        for name, backend in (("eager", "reference"), ("avattn-sdpa", "sdpa"), ("avattn-triton", "triton")):
            layer = CrossModalRelationAttention.from_multihead_attention(mha, backend=backend).to(dtype)
            layers[name] = lambda x, mem, layer=layer: layer(x, mem)
    else:  # fallback: the sublayer written out with Linear projections + cmra_attention
        from avattn.functional import cmra_attention

        def build(backend, dt):
            w, bias = mha.in_proj_weight.detach().to(dt), mha.in_proj_bias.detach().to(dt)
            wo, bo = mha.out_proj.weight.detach().to(dt), mha.out_proj.bias.detach().to(dt)
            params = [p.requires_grad_(True) for p in (w, bias, wo, bo)]

            def fwd(x, mem):
                w, bias, wo, bo = params
                q = F.linear(x, w[:DIM], bias[:DIM]).unflatten(-1, (HEADS, -1))
                kv = [F.linear(m, w[DIM:], bias[DIM:]).unflatten(-1, (2, HEADS, -1)) for m in mem]
                o = cmra_attention(q, [t[:, :, 0] for t in kv], [t[:, :, 1] for t in kv], backend=backend)
                return F.linear(o.flatten(2), wo, bo)

            return fwd

        ref = build("reference", torch.float32)
        for name, backend in (("eager", "reference"), ("avattn-sdpa", "sdpa"), ("avattn-triton", "triton")):
            layers[name] = build(backend, dtype)
    mha_d = mha.to(dtype)
    layers["nn.MultiheadAttention"] = lambda x, mem: mha_d(x, torch.cat(mem, 1), torch.cat(mem, 1), need_weights=False)[0]
    order = ["eager", "nn.MultiheadAttention", "avattn-sdpa", "avattn-triton"]
    ref_fn = ref if callable(ref) and not isinstance(ref, nn.Module) else (lambda x, mem: ref(x, mem))
    return {k: layers[k] for k in order}, ref_fn


# ----------------------------------------------------------------------------- measurement


CPU_SMOKE = False  # --cpu-smoke: plumbing check on CPU under the Triton interpreter; timings meaningless


def copy_bandwidth(device) -> float:
    """Device-to-device copy bandwidth in GB/s (read + write bytes over time)."""
    n = (4 if CPU_SMOKE else 256) * 1024 * 1024  # 1 GiB of fp32 on the GPU
    bufs = [torch.empty(n, dtype=torch.float32, device=device).normal_(), torch.empty(n, dtype=torch.float32, device=device)]
    p50, _, _ = bench(lambda: bufs[1].copy_(bufs[0]))
    bufs.clear()  # free both before the cases run
    if not CPU_SMOKE:
        torch.cuda.empty_cache()
    return 2 * n * 4 / (p50 * 1e-3) / 1e9


def bench(fn, grad_to_none=None) -> tuple[float, float, float]:
    """Median, p20, p80 in ms."""
    if CPU_SMOKE:
        times = []
        for _ in range(3):
            for t in grad_to_none or []:
                t.grad = None
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        return times[1], times[0], times[2]
    import triton.testing

    p50, p20, p80 = triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8], grad_to_none=grad_to_none)
    return p50, p20, p80


def run_case(group, shape, dtype_name, mode, providers, make_inputs, reference, bytes_, flops, copy_gbs):
    """Time every provider on one case; returns one row per provider."""
    rows = []
    inputs = make_inputs(dtype_name)
    ref_out = reference()
    for name, fn in providers.items():
        row = dict(group=group, shape=shape["name"], b=shape["b"], tq=shape["tq"], tk=list(shape["tks"]), dtype=dtype_name,
                   mode=mode, provider=name, ms=math.nan, p20=math.nan, p80=math.nan, gbs=math.nan, pct_copy=math.nan,
                   tflops=math.nan, max_err=math.nan, note="")
        try:
            leaves = [t for t in inputs["leaves"]]
            with torch.no_grad():
                out = fn(*inputs["args"])
            row["max_err"] = (out.float() - ref_out).abs().max().item()
            if mode == "fwd":
                def call(fn=fn):
                    with torch.no_grad():
                        fn(*inputs["args"])

                grads = None
            else:
                grad = torch.randn_like(out)

                def call(fn=fn, grad=grad):
                    fn(*inputs["args"]).backward(grad)

                grads = leaves
            ms, p20, p80 = bench(call, grads)
            row.update(ms=ms, p20=p20, p80=p80)
            row["gbs"] = bytes_ / (ms * 1e-3) / 1e9
            row["pct_copy"] = 100 * row["gbs"] / copy_gbs
            row["tflops"] = flops / (ms * 1e-3) / 1e12
        except torch.cuda.OutOfMemoryError:
            row["note"] = "out of memory"
        except Exception as exc:  # keep the run going; the table says what failed
            row["note"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
        finally:
            if not CPU_SMOKE:
                torch.cuda.empty_cache()
        rows.append(row)
    fused = next((r for r in rows if r["provider"] == "avattn-triton"), None)
    for r in rows:
        r["speedup_of_avattn"] = (r["ms"] / fused["ms"]) if fused and not math.isnan(fused["ms"]) else math.nan
    return rows


def attention_case(shape, dtype_name, mode, device, copy_gbs):
    b, tq, tks = shape["b"], shape["tq"], shape["tks"]
    d = DIM // HEADS
    scale = d ** -0.5
    torch.manual_seed(0)
    base = [torch.randn(b, t, HEADS, d, device=device) for t in (tq, *tks, *tks)]

    def make_inputs(name):
        dt = DTYPES[name]
        leaves = [x.to(dt).requires_grad_(mode != "fwd") for x in base]
        n = len(tks)
        return dict(args=(leaves[0], leaves[1:1 + n], leaves[1 + n:], scale), leaves=leaves)

    def reference():
        with torch.no_grad():
            n = len(tks)
            return naive_attention(base[0], base[1:1 + n], base[1 + n:], scale).float()

    elt = torch.tensor([], dtype=DTYPES[dtype_name]).element_size()
    return run_case("attention", shape, dtype_name, mode, ATTENTION, make_inputs, reference,
                    attention_bytes(b, tq, tks, HEADS, d, elt, mode), attention_flops(b, tq, tks, HEADS, d, mode), copy_gbs)


def sublayer_case(shape, dtype_name, mode, device, copy_gbs):
    b, tq, tks = shape["b"], shape["tq"], shape["tks"]
    providers, ref = make_sublayers(DTYPES[dtype_name], device)
    torch.manual_seed(0)
    base = [torch.randn(b, t, DIM, device=device) for t in (tq, *tks)]

    def make_inputs(name):
        leaves = [x.to(DTYPES[name]).requires_grad_(mode != "fwd") for x in base]
        return dict(args=(leaves[0], leaves[1:]), leaves=leaves)

    def reference():
        with torch.no_grad():
            return ref(base[0], base[1:]).float()

    elt = torch.tensor([], dtype=DTYPES[dtype_name]).element_size()
    return run_case("sublayer", shape, dtype_name, mode, providers, make_inputs, reference,
                    sublayer_bytes(b, tq, tks, DIM, elt, mode), sublayer_flops(b, tq, tks, DIM, mode), copy_gbs)


# ----------------------------------------------------------------------------- output


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fmt(x, spec):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def markdown(meta, rows) -> str:
    lines = [
        "# bench_attention_gpu results", "",
        f"- GPU: {meta['gpu']}", f"- torch {meta['torch']}, triton {meta['triton']}, CUDA {meta['cuda']}",
        f"- date: {meta['date']}", f"- device copy bandwidth (same run): {meta['copy_gbs']:.0f} GB/s",
        f"- command: `{meta['command']}`", "",
        "| group | shape | dtype | mode | provider | median ms (p20/p80) | GB/s | % copy | TFLOP/s | avattn speedup | max err vs fp32 | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['group']} | {r['shape']} | {r['dtype']} | {r['mode']} | {r['provider']} | "
            f"{_fmt(r['ms'], '.4f')} ({_fmt(r['p20'], '.4f')}/{_fmt(r['p80'], '.4f')}) | {_fmt(r['gbs'], '.0f')} | "
            f"{_fmt(r['pct_copy'], '.1f')} | {_fmt(r['tflops'], '.2f')} | {_fmt(r['speedup_of_avattn'], '.2f')}x | "
            f"{_fmt(r['max_err'], '.2e')} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


def short_table(rows) -> str:
    """One line per case: avattn-triton against the fastest other provider."""
    out = [f"{'group':9} {'shape':16} {'dtype':5} {'mode':7} {'avattn ms':>10} {'best other':>24} {'speedup':>8} {'GB/s':>7} {'%copy':>6}"]
    cases = {}
    for r in rows:
        cases.setdefault((r["group"], r["shape"], r["dtype"], r["mode"]), []).append(r)
    for (g, s, dt, m), rs in cases.items():
        fused = next((r for r in rs if r["provider"] == "avattn-triton"), None)
        others = [r for r in rs if r["provider"] != "avattn-triton" and not math.isnan(r["ms"])]
        best = min(others, key=lambda r: r["ms"]) if others else None
        fms = fused["ms"] if fused else math.nan
        best_s = f"{best['provider']} {best['ms']:.4f}" if best else "-"
        sp = best["ms"] / fms if best and not math.isnan(fms) else math.nan
        out.append(f"{g:9} {s:16} {dt:5} {m:7} {_fmt(fms, '10.4f'):>10} {best_s:>24} {_fmt(sp, '7.2f'):>7}x "
                   f"{_fmt(fused['gbs'] if fused else math.nan, '7.0f'):>7} {_fmt(fused['pct_copy'] if fused else math.nan, '6.1f'):>6}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="bf16 only, one AVE and one long shape")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_attention_gpu"), help="output folder")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop starting new cases after this many seconds")
    ap.add_argument("--groups", default="attention,sublayer", help="comma-separated: attention, sublayer")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="check the script's plumbing on CPU under TRITON_INTERPRET=1 (tiny shapes, fp32; timings meaningless)")
    args = ap.parse_args(argv)

    global CPU_SMOKE
    CPU_SMOKE = args.cpu_smoke
    if CPU_SMOKE:
        os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported
    elif not torch.cuda.is_available():
        print("bench_attention_gpu: no CUDA GPU is available (torch.cuda.is_available() is False); "
              "this benchmark measures GPU kernels only. For CPU numbers run `make bench`.", file=sys.stderr)
        return 2
    try:
        import triton
        import triton.testing  # noqa: F401
    except ImportError as exc:
        print(f"bench_attention_gpu: Triton is not importable ({exc}); install triton to benchmark the fused kernels.", file=sys.stderr)
        return 2
    if os.environ.get("TRITON_INTERPRET") == "1" and not CPU_SMOKE:
        print("bench_attention_gpu: TRITON_INTERPRET=1 is set; unset it to benchmark compiled kernels.", file=sys.stderr)
        return 2

    device = torch.device("cpu" if CPU_SMOKE else "cuda")
    t0 = time.perf_counter()
    copy_gbs = copy_bandwidth(device)
    meta = dict(
        gpu="CPU smoke run (Triton interpreter; not a measurement)" if CPU_SMOKE else torch.cuda.get_device_name(device), torch=torch.__version__, triton=triton.__version__,
        cuda=torch.version.cuda, python=platform.python_version(),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        copy_gbs=copy_gbs, command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        quick=args.quick,
    )
    print(f"{meta['gpu']}: device copy {copy_gbs:.0f} GB/s; torch {meta['torch']}, triton {meta['triton']}", flush=True)

    dtypes = ["fp32"] if CPU_SMOKE else ["bf16"] if args.quick else ["bf16", "fp16", "fp32"]
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    all_shapes = [dict(name="smoke-B2", b=2, tq=AVE_T, tks=(AVE_T, 7))] if CPU_SMOKE else shapes(args.quick)
    rows, skipped = [], []
    for group in groups:
        for shape in all_shapes:
            if group == "sublayer" and shape["name"].startswith("long") and shape["tq"] > 4096:
                continue  # the long sublayer adds little beyond the attention core at T = 8192
            for dtype_name in dtypes:
                for mode in ("fwd", "fwd+bwd"):
                    label = f"{group} {shape['name']} {dtype_name} {mode}"
                    if time.perf_counter() - t0 > args.budget_s:
                        skipped.append(label)
                        continue
                    case = attention_case if group == "attention" else sublayer_case
                    case_rows = case(shape, dtype_name, mode, device, copy_gbs)
                    rows += case_rows
                    fused = next(r for r in case_rows if r["provider"] == "avattn-triton")
                    print(f"  {label}: avattn {_fmt(fused['ms'], '.4f')} ms {fused['note']}", flush=True)
    meta["elapsed_s"] = time.perf_counter() - t0
    meta["skipped_for_time"] = skipped

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fields = list(rows[0].keys()) if rows else []
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (";".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
    _atomic_write(out / "results.csv", buf.getvalue())
    _atomic_write(out / "results.json", json.dumps(dict(meta=meta, rows=rows), indent=1, default=str))
    _atomic_write(out / "results.md", markdown(meta, rows))
    if skipped:
        print(f"skipped for the {args.budget_s:.0f} s budget: {len(skipped)} cases (listed in results.json)")
    print(f"wrote {out / 'results.csv'}, results.json, results.md in {meta['elapsed_s']:.0f} s\n")
    print(short_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
