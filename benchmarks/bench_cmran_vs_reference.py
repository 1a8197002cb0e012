"""CMRAN training step and eval forward: the public reference implementation (float32) beside avattn's.

The reference is not part of avattn: pass the folder of your own clone of it
(https://github.com/FloretCat/CMRAN; its ``model/main_model.py`` defines ``supv_main_model``).
Its constructor calls ``.cuda()``; on a CPU those calls are made no-ops while it is built.
The reference's step is the training step of its ``supv_main.py`` (without the accuracy it logs):
BCE + cross-entropy, ``clip_grad_norm_(0.1)``, torch's default Adam (lr 5e-4), as its
``supv_train.sh`` runs it, but in float32 (``model.float()``; the reference script itself trains in
float64). avattn's steps are ``bench_cmran``'s (train.py's recipe) in each ``--modes`` entry. All
cases run interleaved in one process on one synthetic batch (supervised, VGG-19, B = 32); each
ratio is the median over repetitions of the paired ``reference ms / avattn ms``.

    python benchmarks/bench_cmran_vs_reference.py --reference-dir PATH [--modes eager,bf16]
        [--steps 7] [--warmup 2] [--threads 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cmran import Case, cpu_description, isa_line, synthetic_batch, timed  # noqa: E402

from examples.cmran.config import CMRANConfig  # noqa: E402

MODES = ("eager", "bf16")


@contextlib.contextmanager
def _cuda_calls_ignored():
    """The reference builds its attention module with ``.cuda()``: a no-op for the length of the build."""
    module_cuda, tensor_cuda = nn.Module.cuda, torch.Tensor.cuda
    nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        nn.Module.cuda, torch.Tensor.cuda = module_cuda, tensor_cuda


def load_reference(folder: Path) -> type[nn.Module]:
    """The reference's ``supv_main_model`` from ``folder`` (checked by the caller to hold model/main_model.py)."""
    sys.path.insert(0, str(folder))
    from model import main_model  # the reference's own module (``model/`` has no __init__.py)

    if not Path(main_model.__file__).resolve().is_relative_to(folder):
        raise SystemExit(f"imported {main_model.__file__} instead of {folder}/model/main_model.py: "
                         "another 'model' package is on sys.path")
    return main_model.supv_main_model


class ReferenceCase:
    """The reference model's supervised training step and eval forward, in float32."""

    def __init__(self, model_cls: type[nn.Module], batch) -> None:
        torch.manual_seed(0)
        with _cuda_calls_ignored():
            self.model = model_cls().float()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=5e-4)
        self.visual, self.audio, segments, _ = batch
        labels = torch.zeros(*segments.shape, 29).scatter_(2, segments.unsqueeze(-1), 1.0)
        foreground = labels[:, :, :-1]
        self.is_event, event_per_segment = foreground.max(-1)
        self.event = event_per_segment.max(-1).values
        self.bce, self.ce = nn.BCEWithLogitsLoss(), nn.CrossEntropyLoss()

    def train_step(self) -> None:
        self.model.train()
        is_event, event = self.model(self.visual, self.audio)
        is_event = is_event.transpose(1, 0).squeeze().contiguous()
        loss = self.bce(is_event, self.is_event) + self.ce(event, self.event)
        loss.backward()
        float(nn.utils.clip_grad_norm_(self.model.parameters(), 0.1))
        self.opt.step()
        self.opt.zero_grad()
        loss.item()

    def eval_forward(self) -> None:
        self.model.eval()
        with torch.no_grad():
            self.model(self.visual, self.audio)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference-dir", required=True, type=Path, help="your clone of the reference CMRAN")
    p.add_argument("--modes", default="eager,bf16", help=f"avattn modes, a comma list from {MODES}")
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write results.json there (atomically)")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes must be a comma list from {MODES}, got {args.modes!r}")
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--steps and --threads must be >= 1, --warmup >= 0")
    folder = args.reference_dir.resolve()
    if not (folder / "model" / "main_model.py").is_file():
        p.error(f"--reference-dir must be a clone of the reference CMRAN with model/main_model.py; "
                f"{folder / 'model' / 'main_model.py'} does not exist")
    torch.set_num_threads(args.threads)
    reference_cls = load_reference(folder)

    device = torch.device("cpu")
    batch = synthetic_batch(32, 512, device)
    cases = {"reference fp32": ReferenceCase(reference_cls, batch)}
    cases.update({f"avattn {m}": Case(m, True, CMRANConfig(), batch, device, "fused") for m in modes})
    for case in cases.values():
        for _ in range(args.warmup):
            case.train_step()
            case.eval_forward()
    times = {(name, kind): [] for name in cases for kind in ("train", "eval")}
    for _ in range(args.steps):
        for name, case in cases.items():
            for kind, fn in (("train", case.train_step), ("eval", case.eval_forward)):
                times[name, kind].append(timed(fn, device))

    cpu = cpu_description()
    print(f"CMRAN supervised vgg19, B=32, {cpu['model']}, torch {torch.__version__}, {args.threads} thread(s)")
    print(isa_line(cpu))
    rows = []
    for name in cases:
        for kind in ("train", "eval"):
            ref = times["reference fp32", kind]
            mine = times[name, kind]
            median, speedup = statistics.median(mine), statistics.median(a / b for a, b in zip(ref, mine))
            rows.append({"case": name, "kind": kind, "median_ms": median, "speedup_vs_reference": speedup,
                         "samples_ms": mine})
            print(f"  {name:16s} {kind:5s} {median:8.1f} ms   reference / this: {speedup:.2f}x")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        tmp = args.out / f".results.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"cpu": cpu, "threads": args.threads, "rows": rows}, indent=1))
        os.replace(tmp, args.out / "results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
