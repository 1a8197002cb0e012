"""GPU benchmark of multi-source attention: avattn's fused Triton kernels against PyTorch.

Axis legend: b batch, q query steps, k_i steps of memory source i, h heads, d head dim,
e model dim.

    python benchmarks/bench_attention_gpu.py [--quick] [--out DIR] [--budget-s S] [--providers a,b]

Two groups, each in fwd and fwd+bwd, in bf16, fp16 and fp32 (bf16 first):
  * ``attention``: the attention core on (B, T, H, Dh) inputs, two memory sources.
    Providers: ``naive`` (cat, matmul, softmax, matmul), ``naive-compiled`` (the same under
    ``torch.compile``), ``sdpa`` (cat + F.scaled_dot_product_attention; the backend torch chose
    is recorded per row), ``flex`` (cat + compiled FlexAttention, with a block mask over the
    joined memory when keys are padded), ``avattn-triton`` (``cmra_attention_triton``, sources
    read in place).
  * ``sublayer``: the whole CMRA sublayer from raw features (projections included).
    Providers: ``eager`` (avattn.CrossModalRelationAttention, backend="reference"),
    ``nn.MultiheadAttention`` (on the concatenated memory), ``avattn-sdpa``, ``avattn-triton``.
Shapes: AVE (Tq = Tk = 10, two sources, dim 256, 4 heads, B = 32, 512, 4096; B = 4096 also
with random key padding), long (two sources of T = 1024, 4096, 8192 steps, Tq = T, B = 8, 4, 2)
and head dim 128 (T = 2048, B = 4, 2 heads).

Correctness before timing: every provider's output, and for fwd+bwd every input gradient, is
compared with a reference computed in fp32 (in float64 for fp32 cases) under the
flash-attention rule ``max|provider - ref| <= 2 * max|naive_same_dtype - ref| + atol * max(1, max|ref|)``.
A provider that fails is not timed, its row says ``FAILED`` in every output, and the script
exits with code 1 at the end; an exception in ``avattn-triton`` counts as a failure too.

Each timed row: median ms with p20/p80 (triton.testing.do_bench), achieved GB/s on the minimum
bytes (formulas in docs/kernels.md) and as % of a device-to-device copy measured in the same
run, TFLOP/s, speedup of avattn-triton over every other provider. Writes results.csv,
results.json and results.md to --out (default runs/bench_attention_gpu) after every case, so a
run cut short keeps what it measured, and prints a short table last. Exits with code 2 and a
message when no CUDA GPU is present.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import math
import os
import platform
import signal
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
ATOL = {"bf16": 1e-2, "fp16": 2e-3, "fp32": 1e-4}
DIM, HEADS = 256, 4
AVE_T = 10
FAILING = ("FAILED", "error")  # row statuses that make the script exit non-zero (error: avattn-triton only)


# ----------------------------------------------------------------------------- shapes


def _shape(name, b, tq, tks, heads=HEADS, masked=False) -> dict:
    return dict(name=name, b=b, tq=tq, tks=tuple(tks), heads=heads, d=DIM // heads, masked=masked)


def shapes(quick: bool) -> list[dict]:
    """Shapes in priority order (a budget skips what would not fit, from the tail)."""
    ave = [_shape(f"ave-B{b}", b, AVE_T, (AVE_T, AVE_T)) for b in ((4096,) if quick else (4096, 512, 32))]
    masked = [_shape("ave-B4096-masked", 4096, AVE_T, (AVE_T, AVE_T), masked=True)]
    long = [_shape(f"long-T{t}-B{b}", b, t, (t, t)) for t, b in (((4096, 4),) if quick else ((4096, 4), (1024, 8), (8192, 2)))]
    wide = [_shape("long-T2048-B4-d128", 4, 2048, (2048, 2048), heads=2)]
    return ave + masked + long + wide


def sublayer_runs(shape: dict) -> bool:
    """The sublayer runs the model's own shapes: 4 heads, no padding, T <= 4096."""
    return shape["tq"] <= 4096 and not shape["masked"] and shape["heads"] == HEADS


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


# ----------------------------------------------------------------------------- the correctness gate


def gate(names, got, same, ref, atol: float) -> list[dict]:
    """Flash-attention rule per tensor: max|got - ref| <= 2 * max|same - ref| + atol * max(1, max|ref|).

    ``got``: the provider's tensors; ``same``: torch's naive path in the same dtype; ``ref``: the
    reference in higher precision. Returns one dict per tensor (name, err, torch_err, bound, ok);
    a shape mismatch or a non-finite value fails.
    """
    checks = []
    for name, g, s, r in zip(names, got, same, ref, strict=True):
        if g is None or tuple(g.shape) != tuple(r.shape):
            checks.append(dict(name=name, err=math.inf, torch_err=math.nan, bound=math.nan, ok=False,
                               why=f"shape {None if g is None else tuple(g.shape)} != {tuple(r.shape)}"))
            continue
        r = r.double()
        err = (g.double() - r).abs().max().item() if g.numel() else 0.0
        torch_err = (s.double() - r).abs().max().item() if s.numel() else 0.0
        bound = 2 * torch_err + atol * max(1.0, r.abs().max().item() if r.numel() else 0.0)
        ok = math.isfinite(err) and err <= bound
        checks.append(dict(name=name, err=err, torch_err=torch_err, bound=bound, ok=ok, why=""))
    return checks


def gate_summary(checks: list[dict]) -> str:
    """The worst tensor, as 'name err / bound'; every failing tensor when any fails."""
    bad = [c for c in checks if not c["ok"]]
    shown = bad or [max(checks, key=lambda c: c["err"] / c["bound"] if c["bound"] else math.inf)]
    return "; ".join(f"{c['name']} {c['err']:.2e} > {c['bound']:.2e}" if not c["ok"] else f"{c['name']} {c['err']:.2e} <= {c['bound']:.2e}"
                     for c in shown) + ("" if not bad else " (FAILED)")


def _fwd_bwd(fn, args, leaves, mode, dout):
    """[output] (fwd) or [output, grad of every leaf] (fwd+bwd)."""
    for t in leaves:
        t.grad = None
    if mode == "fwd":
        with torch.no_grad():
            return [fn(*args).detach()]
    out = fn(*args)
    out.backward(dout.to(out.dtype))
    return [out.detach()] + [t.grad for t in leaves]


# ----------------------------------------------------------------------------- providers: attention core


def _joined(ks, vs, masks):
    """(b, h, k, d) keys and values of the joined memory, and its padding (b, k) or None."""
    k = torch.cat(ks, 1).transpose(1, 2)
    v = torch.cat(vs, 1).transpose(1, 2)
    pad = None if masks is None else torch.cat(masks, 1)
    return k, v, pad


def naive_attention(q, ks, vs, masks, scale):
    k, v, pad = _joined(ks, vs, masks)
    s = torch.matmul(q.transpose(1, 2), k.transpose(-1, -2)) * scale
    if pad is not None:
        s = s.masked_fill(pad[:, None, None, :], -math.inf)
    return torch.matmul(s.softmax(-1), v).transpose(1, 2)


def sdpa_attention(q, ks, vs, masks, scale):
    k, v, pad = _joined(ks, vs, masks)
    attn_mask = None if pad is None else ~pad[:, None, None, :]
    return F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=attn_mask, scale=scale).transpose(1, 2)


def triton_attention(q, ks, vs, masks, scale):
    from avattn.kernels.cmra_op import cmra_attention_triton

    return cmra_attention_triton(q, ks, vs, masks, scale)


_COMPILED: dict[str, object] = {}


def _compiled(name, fn):
    """One compiled provider for the whole run, static shapes: a case whose graph was compiled
    before (the gate's call and the timed calls; another dtype or mode of a shape seen) reuses it."""
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(fn, dynamic=False)
    return _COMPILED[name]


def allow_recompiles(n_cases: int) -> None:
    """Every case may add a graph per compiled provider (dynamo caches them per function): room for
    all of them, and an error (the row says so) rather than a silent eager fallback past the limit."""
    import torch._dynamo

    config = torch._dynamo.config
    for name, least in (("recompile_limit", n_cases + 8), ("cache_size_limit", n_cases + 8),  # older torch's name
                        ("accumulated_recompile_limit", 4 * (n_cases + 8))):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), least))
    if hasattr(config, "fail_on_recompile_limit_hit"):
        config.fail_on_recompile_limit_hit = True


def make_flex(masks, b, tq, tk, device):
    """compiled FlexAttention on the joined memory; the block mask is built once per case (not timed)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    flex = _compiled("flex", flex_attention)
    block_mask = None
    if masks is not None:
        pad = torch.cat(masks, 1)

        def keep(b_, h_, q_idx, kv_idx):
            return ~pad[b_, kv_idx]

        block_mask = create_block_mask(keep, b, None, tq, tk, device=device)

    def flex_provider(q, ks, vs, masks_, scale):
        k, v, _ = _joined(ks, vs, None)
        return flex(q.transpose(1, 2), k, v, block_mask=block_mask, scale=scale).transpose(1, 2)

    return flex_provider


def attention_providers(masks, b, tq, tks, device) -> dict:
    """name -> fn(q, ks, vs, masks, scale), or name -> str (why the provider is unavailable)."""
    providers = {
        "naive": naive_attention,
        "naive-compiled": _compiled("naive", naive_attention),
        "sdpa": sdpa_attention,
    }
    try:
        providers["flex"] = make_flex(masks, b, tq, sum(tks), device)
    except Exception as exc:  # older torch, or no Triton for Inductor: say so in the row
        providers["flex"] = f"unavailable: {type(exc).__name__}: {str(exc)[:100]}"
    providers["avattn-triton"] = triton_attention
    return providers


def sdpa_backend(q, k, v, attn_mask, scale) -> str:
    """The SDPA backend torch picks for these (b, h, t, d) inputs: flash, efficient, cudnn or math."""
    try:
        from torch.nn.attention import SDPBackend

        choice = int(torch._fused_sdp_choice(q, k, v, attn_mask, 0.0, False, scale=scale))
        names = {int(m): n for n, m in SDPBackend.__members__.items()}
    except Exception as exc:  # private API: record why instead of guessing
        return f"unknown ({type(exc).__name__})"
    name = names.get(choice, str(choice)).lower()
    return {"flash_attention": "flash", "efficient_attention": "efficient", "cudnn_attention": "cudnn"}.get(name, name)


# ----------------------------------------------------------------------------- providers: sublayer


def make_sublayers(dtype, ref_dtype, device):
    from avattn import CrossModalRelationAttention

    torch.manual_seed(0)
    mha = nn.MultiheadAttention(DIM, HEADS, batch_first=True, device=device, dtype=torch.float32)
    layers = {}
    for name, backend in (("eager", "reference"), ("avattn-sdpa", "sdpa"), ("avattn-triton", "triton")):
        layer = CrossModalRelationAttention.from_multihead_attention(mha, backend=backend).to(dtype)
        layers[name] = lambda x, mem, layer=layer: layer(x, mem)
    ref = CrossModalRelationAttention.from_multihead_attention(mha, backend="reference").to(ref_dtype)
    mha_d = nn.MultiheadAttention(DIM, HEADS, batch_first=True, device=device, dtype=dtype)
    mha_d.load_state_dict(mha.state_dict())
    layers["nn.MultiheadAttention"] = lambda x, mem: mha_d(x, torch.cat(mem, 1), torch.cat(mem, 1), need_weights=False)[0]
    order = ["eager", "nn.MultiheadAttention", "avattn-sdpa", "avattn-triton"]
    return {k: layers[k] for k in order}, (lambda x, mem: ref(x, mem))


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


def _empty_cache():
    if not CPU_SMOKE and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_case(case: dict, providers: dict, make_inputs, bytes_, flops, copy_gbs) -> list[dict]:
    """Gate, then time, every provider on one case; one row per provider.

    ``make_inputs(dtype_name_or_torch_dtype)`` -> dict(args=..., leaves=[...]) built from the
    same fp32 base tensors; ``providers[name]`` is a callable on ``args`` or a string saying why
    it is unavailable; ``providers["naive"]`` / the first provider is torch's same-dtype baseline.
    """
    dtype_name, mode = case["dtype"], case["mode"]
    ref_dtype = torch.float64 if dtype_name == "fp32" else torch.float32
    torch.manual_seed(1)
    ref_in = make_inputs(ref_dtype)
    base_name = next(iter(providers))
    base = providers[base_name]
    ref = _fwd_bwd(base, ref_in["args"], ref_in["leaves"], mode, None if mode == "fwd" else case["dout"].to(ref_dtype))
    same_in = make_inputs(DTYPES[dtype_name])
    same = _fwd_bwd(base, same_in["args"], same_in["leaves"], mode, None if mode == "fwd" else case["dout"])
    del ref_in, same_in
    names = ["out"] + ([] if mode == "fwd" else case["grad_names"])
    rows = []
    for name, fn in providers.items():
        row = dict(case["row"], provider=name, status="ok", gate="", sdpa_backend=case["sdpa"].get(name, "-"),
                   ms=math.nan, p20=math.nan, p80=math.nan, gbs=math.nan, pct_copy=math.nan, tflops=math.nan, note="")
        rows.append(row)
        if isinstance(fn, str):
            row.update(status="unavailable", note=fn)
            continue
        try:
            inputs = make_inputs(DTYPES[dtype_name])
            got = _fwd_bwd(fn, inputs["args"], inputs["leaves"], mode, None if mode == "fwd" else case["dout"])
            checks = gate(names, got, same, ref, ATOL[dtype_name])
            row["gate"] = gate_summary(checks)
            del got
            if not all(c["ok"] for c in checks):
                row["status"] = "FAILED"
                continue
            if mode == "fwd":
                def call(fn=fn, args=inputs["args"]):
                    with torch.no_grad():
                        fn(*args)
                grads = None
            else:
                dout = case["dout"]

                def call(fn=fn, args=inputs["args"], dout=dout):
                    fn(*args).backward(dout)
                grads = inputs["leaves"]
            ms, p20, p80 = bench(call, grads)
            row.update(ms=ms, p20=p20, p80=p80, gbs=bytes_ / (ms * 1e-3) / 1e9, tflops=flops / (ms * 1e-3) / 1e12)
            row["pct_copy"] = 100 * row["gbs"] / copy_gbs
        except torch.cuda.OutOfMemoryError:
            row.update(status="oom", note="out of memory")
        except Exception as exc:  # keep the run going; the row says what failed
            row.update(status="error" if name == "avattn-triton" else "provider error",
                       note=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
        finally:
            _empty_cache()
    fused = next((r for r in rows if r["provider"] == "avattn-triton"), None)
    for r in rows:
        r["speedup_of_avattn"] = (r["ms"] / fused["ms"]) if fused and not math.isnan(fused["ms"]) else math.nan
    return rows


def _row(group, shape, dtype_name, mode) -> dict:
    return dict(group=group, shape=shape["name"], b=shape["b"], tq=shape["tq"], tk=list(shape["tks"]),
                heads=shape["heads"], d=shape["d"], masked=shape["masked"], dtype=dtype_name, mode=mode)


def attention_base(shape, device) -> tuple[list, list | None]:
    """fp32 [q, k_0.., v_0..] (b, t, h, d) of a shape, and its bool (b, k_i) masks or None."""
    b, tq, tks, h, d = shape["b"], shape["tq"], shape["tks"], shape["heads"], shape["d"]
    torch.manual_seed(0)
    base = [torch.randn(b, t, h, d, device=device) for t in (tq, *tks, *tks)]
    masks = None
    if shape["masked"]:
        masks = [torch.rand(b, t, device=device) < 0.3 for t in tks]
        masks[0][:, 0] = False  # no row fully padded (torch's paths would return NaN there)
    return base, masks


def attention_case(shape, dtype_name, mode, device, copy_gbs, only=None):
    b, tq, tks, h, d = shape["b"], shape["tq"], shape["tks"], shape["heads"], shape["d"]
    n = len(tks)
    scale = d ** -0.5
    base, masks = attention_base(shape, device)

    def make_inputs(dt):
        leaves = [x.to(dt).requires_grad_(mode != "fwd") for x in base]
        return dict(args=(leaves[0], leaves[1:1 + n], leaves[1 + n:], masks, scale), leaves=leaves)

    providers = attention_providers(masks, b, tq, tks, device)
    if only:
        providers = {k: v for k, v in providers.items() if k in only or k == "naive"}
    dt = DTYPES[dtype_name]
    k_all = torch.cat(base[1:1 + n], 1).to(dt).transpose(1, 2)
    attn_mask = None if masks is None else ~torch.cat(masks, 1)[:, None, None, :]
    chosen = sdpa_backend(base[0].to(dt).transpose(1, 2), k_all, k_all, attn_mask, scale)
    case = dict(dtype=dtype_name, mode=mode, row=_row("attention", shape, dtype_name, mode), sdpa={"sdpa": chosen},
                dout=torch.randn(b, tq, h, d, device=device).to(dt),
                grad_names=["dq"] + [f"dk{i}" for i in range(n)] + [f"dv{i}" for i in range(n)])
    elt = torch.tensor([], dtype=dt).element_size()
    return run_case(case, providers, make_inputs, attention_bytes(b, tq, tks, h, d, elt, mode),
                    attention_flops(b, tq, tks, h, d, mode), copy_gbs)


def sublayer_case(shape, dtype_name, mode, device, copy_gbs, only=None):
    b, tq, tks = shape["b"], shape["tq"], shape["tks"]
    dt = DTYPES[dtype_name]
    ref_dtype = torch.float64 if dtype_name == "fp32" else torch.float32
    providers, ref = make_sublayers(dt, ref_dtype, device)
    if only:
        providers = {k: v for k, v in providers.items() if k in only or k == "eager"}
    torch.manual_seed(0)
    base = [torch.randn(b, t, DIM, device=device) for t in (tq, *tks)]

    def make_inputs(d):
        leaves = [x.to(d).requires_grad_(mode != "fwd") for x in base]
        return dict(args=(leaves[0], leaves[1:]), leaves=leaves)

    # the reference: the fp32 (fp64) layer stands in for the base provider when making `ref`
    providers = {"eager": _by_dtype(providers["eager"], ref, ref_dtype), **{k: v for k, v in providers.items() if k != "eager"}}
    q = torch.randn(b, HEADS, tq, DIM // HEADS, device=device, dtype=dt)
    k = torch.randn(b, HEADS, sum(tks), DIM // HEADS, device=device, dtype=dt)
    chosen = sdpa_backend(q, k, k, None, None)
    case = dict(dtype=dtype_name, mode=mode, row=_row("sublayer", shape, dtype_name, mode),
                sdpa={"avattn-sdpa": chosen, "nn.MultiheadAttention": chosen},
                dout=torch.randn(b, tq, DIM, device=device).to(dt),
                grad_names=["dquery"] + [f"dmemory{i}" for i in range(len(tks))])
    elt = torch.tensor([], dtype=dt).element_size()
    return run_case(case, providers, make_inputs, sublayer_bytes(b, tq, tks, DIM, elt, mode),
                    sublayer_flops(b, tq, tks, DIM, mode), copy_gbs)


def _by_dtype(fn, ref_fn, ref_dtype):
    """``fn`` on same-dtype inputs, ``ref_fn`` on inputs in the reference dtype."""
    return lambda x, mem: ref_fn(x, mem) if x.dtype == ref_dtype else fn(x, mem)


# ----------------------------------------------------------------------------- the time budget


# What a case costs before one of its kind has run (s; the compiled providers' compiles included)
FIRST_GUESS_S = {("attention", "fwd"): 30.0, ("attention", "fwd+bwd"): 60.0,
                 ("sublayer", "fwd"): 10.0, ("sublayer", "fwd+bwd"): 15.0}


class CaseClock:
    """Starts a case only if it should end within the budget: a case is predicted to take as long as
    the longest case of its group and mode so far (or FIRST_GUESS_S before any)."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s, self.start, self.longest = budget_s, time.perf_counter(), {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def predict(self, group: str, mode: str) -> float:
        return self.longest.get((group, mode), FIRST_GUESS_S.get((group, mode), 60.0))

    def fits(self, group: str, mode: str) -> bool:
        return self.elapsed() + self.predict(group, mode) <= self.budget_s

    def record(self, group: str, mode: str, seconds: float) -> None:
        self.longest[(group, mode)] = max(seconds, self.longest.get((group, mode), 0.0))


def cases(dtypes, groups, all_shapes) -> list[tuple[str, str, dict, str]]:
    """(dtype, group, shape, mode) in priority order: per dtype and shape, the attention core, then the
    sublayer (which runs the model's own shapes only), fwd before fwd+bwd."""
    return [(dtype_name, group, shape, mode) for dtype_name in dtypes for shape in all_shapes for group in groups
            if group == "attention" or sublayer_runs(shape) for mode in ("fwd", "fwd+bwd")]


# ----------------------------------------------------------------------------- output


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fmt(x, spec):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def markdown(meta, rows) -> str:
    failed = [r for r in rows if r["status"] in FAILING]
    lines = [
        "# bench_attention_gpu results", "",
        f"- GPU: {meta['gpu']}", f"- torch {meta['torch']}, triton {meta['triton']}, CUDA {meta['cuda']}",
        f"- date: {meta['date']}", f"- device copy bandwidth (same run): {meta['copy_gbs']:.0f} GB/s",
        f"- command: `{meta['command']}`",
        f"- correctness gate: {'**FAILED** for ' + str(len(failed)) + ' rows' if failed else 'every gated row passed'}", "",
        "| group | shape | dtype | mode | provider | status | SDPA backend | median ms (p20/p80) | GB/s | % copy | TFLOP/s "
        "| avattn speedup | gate (worst tensor: err vs bound) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['group']} | {r['shape']} | {r['dtype']} | {r['mode']} | {r['provider']} | {r['status']} | {r['sdpa_backend']} | "
            f"{_fmt(r['ms'], '.4f')} ({_fmt(r['p20'], '.4f')}/{_fmt(r['p80'], '.4f')}) | {_fmt(r['gbs'], '.0f')} | "
            f"{_fmt(r['pct_copy'], '.1f')} | {_fmt(r['tflops'], '.2f')} | {_fmt(r['speedup_of_avattn'], '.2f')}x | "
            f"{r['gate']} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


def short_table(rows) -> str:
    """One line per case: avattn-triton against the fastest other provider; FAILED where any provider failed."""
    out = [f"{'group':9} {'shape':18} {'dtype':5} {'mode':7} {'avattn ms':>10} {'best other':>26} {'speedup':>8} "
           f"{'GB/s':>7} {'%copy':>6} status"]
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
        bad = [r["provider"] for r in rs if r["status"] in FAILING]
        status = f"FAILED ({', '.join(bad)})" if bad else "ok"
        out.append(f"{g:9} {s:18} {dt:5} {m:7} {_fmt(fms, '10.4f'):>10} {best_s:>26} {_fmt(sp, '7.2f'):>7}x "
                   f"{_fmt(fused['gbs'] if fused else math.nan, '7.0f'):>7} "
                   f"{_fmt(fused['pct_copy'] if fused else math.nan, '6.1f'):>6} {status}")
    return "\n".join(out)


def write_outputs(out: Path, meta: dict, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (";".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
    _atomic_write(out / "results.csv", buf.getvalue())
    _atomic_write(out / "results.json", json.dumps(dict(meta=meta, rows=rows), indent=1, default=str))
    _atomic_write(out / "results.md", markdown(meta, rows))


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="bf16 only; AVE B=4096 (plain and masked), T=4096, head dim 128")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_attention_gpu"), help="output folder")
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="start a case only if it should end within this many seconds of the start")
    ap.add_argument("--groups", default="attention,sublayer", help="comma-separated: attention, sublayer")
    ap.add_argument("--providers", default="", help="comma-separated subset of providers (the same-dtype baseline always runs)")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="check the script's plumbing on CPU under TRITON_INTERPRET=1 (tiny shapes, fp32; timings meaningless)")
    args = ap.parse_args(argv)
    # SIGINT raises KeyboardInterrupt even if this process started with it ignored (a background job of
    # a non-interactive shell): `timeout -s INT` must stop the run with what it measured written
    signal.signal(signal.SIGINT, signal.default_int_handler)

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
        gpu="CPU smoke run (Triton interpreter; not a measurement)" if CPU_SMOKE else torch.cuda.get_device_name(device),
        torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda, python=platform.python_version(),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        copy_gbs=copy_gbs, command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        quick=args.quick, gate=f"max|x - ref| <= 2 max|naive_same_dtype - ref| + atol max(1, max|ref|), atol {ATOL}",
    )
    print(f"{meta['gpu']}: device copy {copy_gbs:.0f} GB/s; torch {meta['torch']}, triton {meta['triton']}", flush=True)

    dtypes = ["fp32"] if CPU_SMOKE else ["bf16"] if args.quick else ["bf16", "fp16", "fp32"]
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    only = {p.strip() for p in args.providers.split(",") if p.strip()} or None
    if CPU_SMOKE:
        all_shapes = [_shape("smoke-B2", 2, AVE_T, (AVE_T, 7)), _shape("smoke-B2-masked", 2, 5, (3, 7), masked=True)]
    else:
        all_shapes = shapes(args.quick)
    out = Path(args.out)
    rows, skipped = [], []
    todo = cases(dtypes, groups, all_shapes)
    allow_recompiles(len(todo))
    clock = CaseClock(args.budget_s - (time.perf_counter() - t0))
    meta["interrupted"] = False
    try:
        for dtype_name, group, shape, mode in todo:
            label = f"{group} {shape['name']} {dtype_name} {mode}"
            if not clock.fits(group, mode):
                skipped.append(label)
                print(f"  {label}: skipped (about {clock.predict(group, mode):.0f} s, "
                      f"{clock.budget_s - clock.elapsed():.0f} s left)", flush=True)
                continue
            started = time.perf_counter()
            case = attention_case if group == "attention" else sublayer_case
            case_rows = case(shape, dtype_name, mode, device, copy_gbs, only)
            clock.record(group, mode, time.perf_counter() - started)
            rows += case_rows
            fused = next((r for r in case_rows if r["provider"] == "avattn-triton"), None)
            bad = [f"{r['provider']} {r['status']}: {r['gate'] or r['note']}" for r in case_rows if r["status"] in FAILING]
            print(f"  {label}: avattn {_fmt(fused['ms'] if fused else math.nan, '.4f')} ms"
                  f" ({time.perf_counter() - started:.0f} s)" + (f"  FAILED: {' | '.join(bad)}" if bad else ""), flush=True)
            meta["elapsed_s"] = time.perf_counter() - t0
            meta["skipped_for_time"] = skipped
            write_outputs(out, meta, rows)  # after every case: a run cut short keeps its rows
    except KeyboardInterrupt:  # `timeout -s INT`: keep every finished case, say where it stopped
        meta["interrupted"] = True
        print(f"interrupted after {time.perf_counter() - t0:.0f} s; {len(rows)} rows kept", flush=True)
    meta["elapsed_s"] = time.perf_counter() - t0
    meta["skipped_for_time"] = skipped
    failed = [r for r in rows if r["status"] in FAILING]
    meta["failed"] = [f"{r['group']} {r['shape']} {r['dtype']} {r['mode']} {r['provider']}" for r in failed]
    write_outputs(out, meta, rows)
    if skipped:
        print(f"skipped for the {args.budget_s:.0f} s budget: {len(skipped)} cases (listed in results.json)")
    print(f"wrote {out / 'results.csv'}, results.json, results.md in {meta['elapsed_s']:.0f} s\n")
    print(short_table(rows))
    if meta["interrupted"]:
        return 130
    if failed:
        print(f"\nFAILED: {len(failed)} rows did not pass the correctness gate or raised in avattn-triton:", file=sys.stderr)
        for line in meta["failed"]:
            print(f"  FAILED {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
