"""CMRAN step benchmark: a training step and an eval forward at AVE shapes, measured in one run.

Modes: fp32 eager, bf16 autocast, torch.compile (fp32). Reports median ms (p20/p80) and each
mode's ratio to fp32 eager. Ratios are the result on a CPU; absolute times only mean
something on a quiet machine (and are reported as such on a GPU).

    python benchmarks/bench_cmran.py [--device cpu|cuda] [--batch 32] [--modes eager,bf16,compile]
                                     [--setting supervised] [--features vgg19] [--steps 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from examples.cmran.config import ModelConfig  # noqa: E402
from examples.cmran.model import CMRAN  # noqa: E402

MODES = ("eager", "bf16", "compile")


def synthetic_batch(batch: int, channels: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    visual = torch.rand(batch, 10, 7, 7, channels, generator=g).to(device)
    audio = torch.rand(batch, 10, 128, generator=g).to(device)
    segments = torch.randint(0, 29, (batch, 10), generator=g).to(device)
    videos = torch.randint(0, 28, (batch,), generator=g).to(device)
    return visual, audio, segments, videos


def timed(fn, steps: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def bench_mode(mode: str, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    cfg = ModelConfig(setting=args.setting, features=args.features)
    model = CMRAN(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    run = torch.compile(model) if mode == "compile" else model
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16")
    visual, audio, segments, videos = synthetic_batch(args.batch, cfg.visual_dim, device)

    def train_step():
        model.train()
        with amp:
            out = run(visual, audio)
            loss = model.loss(out, segments, videos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()

    def eval_forward():
        model.eval()
        with torch.no_grad(), amp:
            run(visual, audio)

    result = {}
    for name, fn in (("train_step", train_step), ("eval_forward", eval_forward)):
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            fn()
        warm_s = time.perf_counter() - t0
        ts = sorted(timed(fn, args.steps, device))
        q = statistics.quantiles(ts, n=5) if len(ts) >= 2 else [ts[0]] * 4
        result[name] = {"median_ms": statistics.median(ts), "p20_ms": q[0], "p80_ms": q[3], "warmup_s": warm_s}
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--setting", default="supervised", choices=("supervised", "weak"))
    p.add_argument("--features", default="vgg19", choices=("vgg19", "resnet151"))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=None, help="write results.json there")
    args = p.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad or args.batch < 1 or args.steps < 1:
        p.error(f"--modes must be from {MODES} (got {bad}); --batch and --steps must be >= 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")

    results = {m: bench_mode(m, args, device) for m in modes}
    base = results.get("eager")
    print(f"\nCMRAN {args.setting} {args.features}, B={args.batch}, device={device} "
          f"({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}")
    print(f"{'mode':<9} {'train step ms (p20/p80)':>26} {'vs eager':>9} {'eval fwd ms (p20/p80)':>24} {'vs eager':>9}")
    for m, r in results.items():
        cells = []
        for k in ("train_step", "eval_forward"):
            x = r[k]
            ratio = f"{base[k]['median_ms'] / x['median_ms']:.2f}x" if base else "-"
            cells.append((f"{x['median_ms']:.1f} ({x['p20_ms']:.1f}/{x['p80_ms']:.1f})", ratio))
        print(f"{m:<9} {cells[0][0]:>26} {cells[0][1]:>9} {cells[1][0]:>24} {cells[1][1]:>9}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"device": str(device), "torch": torch.__version__, "batch": args.batch, "setting": args.setting,
                "features": args.features, "threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%d %H:%M")}
        tmp = out / "results.json.tmp"
        tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        os.replace(tmp, out / "results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
