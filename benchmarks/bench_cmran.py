"""CMRAN step benchmark: each mode's training step and eval forward as a ratio to its matrix-product floor.

The floor of a step is the time of its matrix products alone: the products (mm, addmm, bmm, ...)
of one real step of the mode, at its shapes, strides and dtype (forward and the backward products
it needs), are recorded with a TorchDispatchMode and replayed on fresh tensors in the same run.
A step cannot be faster than its floor; ``ratio = step / floor`` (the median over repetitions of
each step's time over the floor's timed just before it) says how much of the rest (elementwise
work, dropout sampling, the optimizer, framework overhead) is left.

Modes: eager (fp32), bf16 (eager, bf16 autocast), compile (fp32 ``torch.compile``), compile_bf16,
cudagraphs (``torch.compile(mode="reduce-overhead")``, CUDA only). Repetitions are interleaved
(floor, step, ... for every mode in turn) and summarized by medians, so the ratios hold on a
shared machine; absolute times only mean something on a quiet one. ``--compare-ref`` also times
each mode with the plain visual layers (``CMRAN.fused_visual = False``) in the same rotation.
The train step is train.py's: ``--adam-impl`` (default fused) and ``--dropout-impl`` (relation-layer
masks, default bit) take comma lists; with more than one combination every one joins the rotation
and each is also reported as a paired speedup over the last combination (e.g. ``fused,for`` and
``bit,torch``: over torch's default Adam with ``nn.Dropout``).

    python benchmarks/bench_cmran.py [--device cpu] [--modes eager,bf16,compile] [--batch 32]
        [--backends auto] [--steps 10] [--warmup 3] [--threads 1] [--compare-ref] [--out DIR]
        [--adam-impl fused,for] [--dropout-impl bit,torch]
    python benchmarks/bench_cmran.py --device cuda --modes eager,bf16,compile,cudagraphs \\
        --backends sdpa,triton --batch 32,256 --steps 10 --warmup 3 --out DIR
    python benchmarks/bench_cmran.py --device cuda --quick --backends sdpa,triton --budget-s 200 --out DIR

The run goes in phases, one (batch, backend, modes) each: every mode at every batch, for each backend
in turn; ``--quick`` orders them by value instead: eager and bf16, then CUDA graphs, at the first
batch (default 32), then ``torch.compile``, then the other batches (default 256). ``--budget-s``
starts a phase only if it should end in time, judged by the phases run so far (a compiled mode's
warm-up is most of its cost). ``--out`` gets results.json after every phase, so a run cut short keeps
every phase it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from avattn import DROPOUT_IMPLS  # noqa: E402
from avattn.functional import BACKENDS  # noqa: E402
from examples.ave.amp import cpu_isa_flags, native_bf16  # noqa: E402
from examples.ave.constants import VISUAL_DIMS  # noqa: E402
from examples.ave.optim import ADAM_IMPLS, clip_gradients, make_adam  # noqa: E402
from examples.cmran.config import CMRANConfig  # noqa: E402
from examples.cmran.model import CMRAN  # noqa: E402

MODES = ("eager", "bf16", "compile", "compile_bf16", "cudagraphs")
# matrix products as dispatched (aten, and oneDNN's linear that the fused visual path calls on a CPU)
PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "_addmm_activation", "_linear_pointwise"}
GRAD_CLIP = 0.1  # the supervised recipe's


# ---- the machine ---------------------------------------------------------------------------------

def cpu_description() -> dict:
    """The CPU's model, the instruction sets it has, and what torch dispatches to."""
    flags = cpu_isa_flags()
    isa = [name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
                                   ("amx_bf16", "AMX")) if flag in flags]
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    native, why = native_bf16(torch.device("cpu"))
    env = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
           if k in os.environ}
    return {"model": model, "isa": isa, "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native, "native_bf16_why": why, "dispatch_env": env}


def isa_line(cpu: dict) -> str:
    """The header line naming the CPU's instruction sets, torch's dispatch and bf16 support."""
    return (f"CPU instruction sets: {' / '.join(cpu['isa']) or 'unknown'}; torch CPU capability "
            f"{cpu['torch_capability']}; native bf16: {'yes' if cpu['native_bf16'] else 'no'} ({cpu['native_bf16_why']})"
            + (f"; dispatch env {cpu['dispatch_env']}" if cpu["dispatch_env"] else ""))


# ---- the floor -----------------------------------------------------------------------------------

def _constant(t: torch.Tensor) -> bool:
    """A small operand whose entries are all equal: a product with it is a sum (a reduction), not model work."""
    return t.numel() <= 1 << 20 and t.numel() > 1 and bool((t == t.flatten()[0]).all())


class ProductRecorder(TorchDispatchMode):
    """Records every matrix product dispatched: (op, argument specs), tensors as (shape, stride, dtype).
    Products with a constant operand (sums written as products) are counted in ``sums``, not recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []
        self.sums = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket.__name__.rstrip("_") in PRODUCTS and "out" not in kwargs:
            if any(isinstance(a, torch.Tensor) and _constant(a) for a in args):
                self.sums += 1
                return func(*args, **kwargs)
            spec = lambda a: ("T", tuple(a.shape), tuple(a.stride()), a.dtype) if isinstance(a, torch.Tensor) else a  # noqa: E731
            self.calls.append((func, tuple(spec(a) for a in args), {k: spec(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


class Floor:
    """Replays recorded products on fresh random tensors (one tensor per distinct spec, made once)."""

    def __init__(self, calls: list, device: torch.device) -> None:
        cache: dict = {}

        def make(a):
            if not (isinstance(a, tuple) and a and a[0] == "T"):
                return a
            if a not in cache:
                _, shape, stride, dtype = a
                t = torch.empty_strided(shape, stride, dtype=dtype, device=device)
                cache[a] = t.normal_() if t.is_floating_point() else t.zero_()
            return cache[a]

        self.calls = [(f, tuple(make(a) for a in args), {k: make(v) for k, v in kw.items()}) for f, args, kw in calls]
        self.flop = sum(_flop(f, args) for f, args, _ in self.calls)

    def __call__(self) -> None:
        for f, args, kw in self.calls:
            f(*args, **kw)


def _flop(func, args) -> float:
    name = func.overloadpacket.__name__.rstrip("_")
    t = [a for a in args if isinstance(a, torch.Tensor)]
    if name in ("mm", "addmm", "_addmm_activation"):
        a, b = t[-2], t[-1]
        return 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    if name == "_linear_pointwise":  # x (m, k), weight (n, k)
        return 2.0 * t[0].shape[0] * t[0].shape[1] * t[1].shape[0]
    if name in ("bmm", "baddbmm", "addbmm"):
        a, b = t[-2], t[-1]
        return 2.0 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return 2.0 * t[-2].numel()


# ---- one configuration ---------------------------------------------------------------------------

def synthetic_batch(batch: int, channels: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    visual = torch.rand(batch, 10, 7, 7, channels, generator=g).to(device)
    audio = torch.rand(batch, 10, 128, generator=g).to(device)
    segments = torch.randint(0, 29, (batch, 10), generator=g).to(device)
    videos = torch.randint(0, 28, (batch,), generator=g).to(device)
    return visual, audio, segments, videos


class Case:
    """One (mode, fused or plain visual path) on one model: a train step and an eval forward, like train.py."""

    def __init__(self, mode: str, fused: bool, cfg: CMRANConfig, batch, device: torch.device, adam_impl: str) -> None:
        torch.manual_seed(0)
        self.mode, self.fused, self.device = mode, fused, device
        self.model = model = CMRAN(cfg).to(device)
        model.fused_visual = fused
        self.opt = make_adam(model.parameters(), lr=5e-4, impl=adam_impl)
        if mode in ("compile", "compile_bf16"):
            self.run = torch.compile(model)
        elif mode == "cudagraphs":
            self.run = torch.compile(model, mode="reduce-overhead")
        else:
            self.run = model
        self.bf16 = mode in ("bf16", "compile_bf16")
        self.batch = batch

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def train_step(self, run=None) -> None:
        visual, audio, segments, videos = self.batch
        self.model.train()
        with self.autocast():
            out = (run or self.run)(visual, audio)
        out = type(out)(*(x.float() for x in out))
        loss = self.model.loss(out, segments, videos)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(self.model.parameters(), GRAD_CLIP).item()  # train.py reads the norm (non-finite stop)
        self.opt.step()

    def eval_forward(self, run=None) -> None:
        visual, audio = self.batch[:2]
        self.model.eval()
        with torch.no_grad(), self.autocast():
            (run or self.run)(visual, audio)

    def floors(self) -> tuple[Floor, Floor]:
        """The products of one eager step and one eager eval forward at this mode's dtype (compiled modes
        run the same products, so they share their eager twin's floor)."""
        floors = []
        for fn in (self.train_step, self.eval_forward):
            rec = ProductRecorder()
            with rec:
                fn(run=self.model)
            floors.append(Floor(rec.calls, self.device))
        return floors[0], floors[1]


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def summary(ts: list[float]) -> dict:
    ts = sorted(ts)
    q = statistics.quantiles(ts, n=5) if len(ts) >= 2 else [ts[0]] * 4
    return {"median_ms": statistics.median(ts), "p20_ms": q[0], "p80_ms": q[3]}


def bench_config(modes, backend: str, batch_size: int, args, device: torch.device) -> list[dict]:
    dropout = 0.0 if args.like_for_like else 0.1
    batch = synthetic_batch(batch_size, VISUAL_DIMS[args.features], device)
    cases = []
    impls = [(a, d) for a in args.adam_impls for d in args.dropout_impls]
    for mode, (adam_impl, dropout_impl) in ((m, i) for m in modes for i in impls):
        cfg = CMRANConfig(setting=args.setting, features=args.features, backend=backend, dropout=dropout,
                          dropout_impl=dropout_impl)
        for fused in ((True, False) if args.compare_ref else (True,)):
            case = Case(mode, fused, cfg, batch, device, adam_impl)
            case.adam_impl, case.dropout_impl = adam_impl, dropout_impl
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                case.train_step()
                case.eval_forward()
            case.warmup_s = time.perf_counter() - t0
            case.floor_step, case.floor_eval = case.floors()
            for _ in range(max(1, args.warmup // 2)):
                case.floor_step()
                case.floor_eval()
            case.times = {k: [] for k in ("train_step", "floor_step", "eval_forward", "floor_eval")}
            cases.append(case)
            print(f"  ready: B={batch_size} backend={backend} mode={mode} adam={adam_impl} dropout={dropout_impl}"
                  f"{'' if fused else ' (plain visual)'} "
                  f"(warm-up {case.warmup_s:.1f} s)", flush=True)
    for _ in range(args.steps):  # interleaved: every case's floor and step in turn
        for case in cases:
            case.times["floor_step"].append(timed(case.floor_step, device))
            case.times["train_step"].append(timed(case.train_step, device))
            case.times["floor_eval"].append(timed(case.floor_eval, device))
            case.times["eval_forward"].append(timed(case.eval_forward, device))
    rows = []
    for case in cases:
        s = {k: summary(v) for k, v in case.times.items()}
        rows.append({
            "batch": batch_size, "backend": backend, "dropout": dropout, "dropout_impl": case.dropout_impl,
            "adam_impl": case.adam_impl, "mode": case.mode,
            "visual_path": "fused" if case.fused else "plain", "warmup_s": round(case.warmup_s, 2),
            **{k: s[k] for k in s},
            # each repetition's step over the floor timed just before it, then the median: load that
            # comes and goes on a shared machine hits both halves of a pair alike
            "train_ratio": statistics.median(a / b for a, b in zip(case.times["train_step"], case.times["floor_step"])),
            "eval_ratio": statistics.median(a / b for a, b in zip(case.times["eval_forward"], case.times["floor_eval"])),
            "floor_step_gflop": case.floor_step.flop / 1e9, "floor_eval_gflop": case.floor_eval.flop / 1e9,
            "floor_step_products": len(case.floor_step.calls), "floor_eval_products": len(case.floor_eval.calls),
            "samples_ms": {k: [round(x, 3) for x in v] for k, v in case.times.items()},
        })
    return rows


# ---- phases and the time budget ------------------------------------------------------------------

EAGER_MODES = ("eager", "bf16")
QUICK_MODES = ("eager", "bf16", "cudagraphs", "compile")  # --quick's order of value
# what a phase of one mode costs before anything of its kind has run (s; warm-up included): a
# compiled mode compiles the train step and the eval forward (minutes on a CPU)
FIRST_GUESS_S = {"eager": 20.0, "bf16": 20.0}
FIRST_GUESS_COMPILED_S = 120.0


def phases(modes: list[str], backends: list[str], batches: list[int], quick: bool) -> list[tuple[int, str, list[str]]]:
    """(batch, backend, modes) in the order they run."""
    if not quick:
        return [(b, backend, modes) for b in batches for backend in backends]
    groups = [[m for m in modes if m in EAGER_MODES], [m for m in modes if m == "cudagraphs"],
              [m for m in modes if m not in EAGER_MODES and m != "cudagraphs"]]
    order = [(batches[0], g) for g in groups] + [(b, g) for b in batches[1:] for g in groups]
    return [(b, backend, g) for b, g in order for backend in backends if g]


class Budget:
    """Predicts a phase's seconds from the phases run so far: a mode's timing at another batch size
    scaled by the batch ratio, plus its warm-up (scaled too in eager modes; a compiled mode's warm-up
    is its compile), a compiled mode not run yet as the dearest compiled mode run, else FIRST_GUESS."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds, self.start, self.cost = seconds, time.perf_counter(), {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def predict(self, batch: int, modes: list[str]) -> float:
        total = 0.0
        for mode in modes:
            seen = [(b, c) for (m, b), c in self.cost.items() if m == mode]
            compiled = [sum(c) for (m, _), c in self.cost.items() if m not in EAGER_MODES]
            if seen:
                b0, (warmup, timing) = max(seen)
                scale = max(1.0, batch / b0)
                total += (warmup * scale if mode in EAGER_MODES else warmup) + timing * scale
            elif mode in EAGER_MODES:
                total += FIRST_GUESS_S[mode]
            else:
                total += max(compiled, default=FIRST_GUESS_COMPILED_S)
        return total

    def fits(self, batch: int, modes: list[str]) -> bool:
        return self.seconds is None or self.elapsed() + self.predict(batch, modes) <= self.seconds

    def record(self, rows: list[dict], seconds: float) -> None:
        """A finished phase: (warm-up, share of the rest) per mode; the rest (floors, timing) split evenly."""
        shared = max(0.0, seconds - sum(r["warmup_s"] for r in rows)) / max(1, len(rows))
        for r in rows:
            self.cost[(r["mode"], r["batch"])] = (r["warmup_s"], shared)


def write_results(out: Path, meta: dict, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".results.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    os.replace(tmp, out / "results.json")


# ---- CLI -----------------------------------------------------------------------------------------

def _list(text: str, choices, name: str, p: argparse.ArgumentParser) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in choices]
    if bad or not items:
        p.error(f"--{name} must be a comma list from {choices}, got {text!r}")
    return items


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--modes", default=None,
                   help=f"comma list from {MODES} (default eager,bf16,compile; with --quick {','.join(QUICK_MODES)})")
    p.add_argument("--backends", default="auto", help=f"comma list from {BACKENDS}")
    p.add_argument("--batch", default=None, help="comma list of batch sizes (default 32; with --quick 32,256)")
    p.add_argument("--quick", action="store_true",
                   help="phases by value: eager, bf16, cudagraphs at the first batch; compile and the other batches after")
    p.add_argument("--budget-s", type=float, default=None,
                   help="start a phase only if it should end within this many seconds of the start")
    p.add_argument("--setting", default="supervised", choices=("supervised", "weak"))
    p.add_argument("--features", default="vgg19", choices=("vgg19", "resnet151"))
    p.add_argument("--steps", type=int, default=10, help="timed repetitions per case")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default; the docs' figures use 1)")
    p.add_argument("--compare-ref", action="store_true", help="also time the plain visual layers (fused_visual=False)")
    p.add_argument("--adam-impl", default="fused",
                   help=f"comma list from {ADAM_IMPLS}: torch's Adam implementation (train.py's; default fused)")
    p.add_argument("--dropout-impl", default=CMRANConfig().dropout_impl,
                   help=f"comma list from {DROPOUT_IMPLS}: relation-layer dropout masks (CMRANConfig.dropout_impl)")
    p.add_argument("--out", default=None, help="write results.json there (atomically)")
    args = p.parse_args(argv)
    # SIGINT raises KeyboardInterrupt even if this process started with it ignored (a background job of
    # a non-interactive shell): `timeout -s INT` must stop the run with what it measured written
    signal.signal(signal.SIGINT, signal.default_int_handler)
    modes = _list(args.modes or (",".join(QUICK_MODES) if args.quick else "eager,bf16,compile"), MODES, "modes", p)
    backends = _list(args.backends, BACKENDS, "backends", p)
    args.adam_impls = _list(args.adam_impl, ADAM_IMPLS, "adam-impl", p)
    args.dropout_impls = _list(args.dropout_impl, DROPOUT_IMPLS, "dropout-impl", p)
    try:
        batches = [int(b) for b in (args.batch or ("32,256" if args.quick else "32")).split(",") if b.strip()]
    except ValueError:
        p.error(f"--batch must be a comma list of integers, got {args.batch!r}")
    if not batches or min(batches) < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 0:
        p.error("--batch values and --steps must be >= 1, --warmup and --threads >= 0")
    device = torch.device(args.device)
    if device.type not in ("cpu", "cuda"):
        p.error(f"--device must be cpu or cuda, got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)

    skipped = []
    if args.budget_s is not None and args.budget_s <= 0:
        p.error(f"--budget-s must be > 0, got {args.budget_s}")
    if device.type != "cuda" and "cudagraphs" in modes:
        modes.remove("cudagraphs")
        skipped.append("mode cudagraphs: skipped, CUDA graphs need --device cuda")
    if device.type != "cuda" and "triton" in backends:
        backends.remove("triton")
        skipped.append("backend triton: skipped, the Triton kernels need a CUDA GPU")
    if not modes or not backends:
        p.error("nothing left to run on this device: " + "; ".join(skipped))
    # backend triton applies no attention dropout: with it in the run, every backend runs dropout=0
    args.like_for_like = "triton" in backends

    cpu = cpu_description()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu["model"]
    header = (f"CMRAN {args.setting} {args.features}, device={device} ({name}), torch {torch.__version__}, "
              f"{torch.get_num_threads()} CPU thread(s)")
    isa = isa_line(cpu)
    print(header)
    print(isa)
    for line in skipped:
        print(line)
    if args.like_for_like:
        print("note: dropout=0 in the relation layers for every backend (backend triton applies none), "
              "so the backends are compared like for like")

    meta = {"device": str(device), "device_name": name, "cpu": cpu, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "setting": args.setting, "features": args.features,
            "steps": args.steps, "warmup": args.warmup, "skipped": skipped, "like_for_like_dropout0":
            args.like_for_like, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "time_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "quick": args.quick,
            "budget_s": args.budget_s, "phases_done": [], "skipped_for_time": [], "interrupted": False}
    rows, budget = [], Budget(args.budget_s)
    try:
        for batch_size, backend, phase_modes in phases(modes, backends, batches, args.quick):
            label = f"B={batch_size} {backend} {','.join(phase_modes)}"
            if not budget.fits(batch_size, phase_modes):
                meta["skipped_for_time"].append(label)
                print(f"  skipped for the {args.budget_s:.0f} s budget: {label} (about "
                      f"{budget.predict(batch_size, phase_modes):.0f} s, {budget.elapsed():.0f} s used)", flush=True)
                continue
            t0 = time.perf_counter()
            phase_rows = bench_config(phase_modes, backend, batch_size, args, device)
            budget.record(phase_rows, time.perf_counter() - t0)
            rows += phase_rows
            meta["phases_done"].append(label)
            meta["elapsed_s"] = round(budget.elapsed(), 1)
            if args.out:
                write_results(Path(args.out), meta, rows)  # after every phase: a run cut short keeps them
            if device.type == "cuda":
                torch.cuda.empty_cache()
    except KeyboardInterrupt:  # `timeout -s INT`: keep what was measured, say where it stopped
        meta["interrupted"] = True
        if args.out:
            write_results(Path(args.out), meta, rows)
        print(f"interrupted after {budget.elapsed():.0f} s; {len(meta['phases_done'])} phases kept", flush=True)
        return 130

    print(f"\n{header}\n{isa}")
    print(f"{'B':>4} {'backend':<9} {'mode':<13} {'adam':<8} {'dropout':<8} {'path':<6} {'train ms':>9} {'floor':>8} "
          f"{'ratio':>6}  {'eval ms':>8} {'floor':>7} {'ratio':>6}")
    for r in rows:
        print(f"{r['batch']:>4} {r['backend']:<9} {r['mode']:<13} {r['adam_impl']:<8} {r['dropout_impl']:<8} "
              f"{r['visual_path']:<6} "
              f"{r['train_step']['median_ms']:>9.1f} {r['floor_step']['median_ms']:>8.1f} {r['train_ratio']:>5.2f}x  "
              f"{r['eval_forward']['median_ms']:>8.1f} {r['floor_eval']['median_ms']:>7.1f} {r['eval_ratio']:>5.2f}x")
    print("ratio: median over repetitions of (step ms / floor ms timed just before it); ms: medians")
    if args.compare_ref:
        print("fused visual path vs plain layers (median of plain ms / fused ms over repetitions, same run):")
        for r in rows:
            if r["visual_path"] != "fused":
                continue
            ref = next(x for x in rows if x["visual_path"] == "plain" and
                       all(x[k] == r[k] for k in ("batch", "backend", "mode", "adam_impl", "dropout_impl")))
            paired = {k: statistics.median(a / b for a, b in zip(ref["samples_ms"][k], r["samples_ms"][k]))
                      for k in ("train_step", "eval_forward")}  # the two run back to back in every repetition
            r["speedup_vs_plain"] = paired
            print(f"  B={r['batch']} {r['backend']} {r['mode']} adam={r['adam_impl']} dropout={r['dropout_impl']}: "
                  f"train {paired['train_step']:.2f}x, "
                  f"eval {paired['eval_forward']:.2f}x")
    if len(args.adam_impls) * len(args.dropout_impls) > 1:
        base = (args.adam_impls[-1], args.dropout_impls[-1])
        print(f"vs adam={base[0]} dropout={base[1]} (median of its ms / this ms over repetitions, same run):")
        for r in rows:
            ref = next(x for x in rows if (x["adam_impl"], x["dropout_impl"]) == base and
                       all(x[k] == r[k] for k in ("batch", "backend", "mode", "visual_path")))
            if ref is r:
                continue
            paired = {k: statistics.median(a / b for a, b in zip(ref["samples_ms"][k], r["samples_ms"][k]))
                      for k in ("train_step", "eval_forward")}
            r["speedup_vs_impls"] = {"adam_impl": base[0], "dropout_impl": base[1], **paired}
            print(f"  B={r['batch']} {r['backend']} {r['mode']} adam={r['adam_impl']} dropout={r['dropout_impl']}"
                  f"{'' if r['visual_path'] == 'fused' else ' (plain visual)'}: train {paired['train_step']:.2f}x, "
                  f"eval {paired['eval_forward']:.2f}x")
    if meta["skipped_for_time"]:
        print(f"skipped for the {args.budget_s:.0f} s budget: {'; '.join(meta['skipped_for_time'])}")
    if args.out:
        meta["elapsed_s"] = round(budget.elapsed(), 1)
        write_results(Path(args.out), meta, rows)
        print(f"wrote {Path(args.out) / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
