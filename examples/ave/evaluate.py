"""Segment accuracy of a model on a split, and the ``evaluate`` subcommand.

Axis legend: b batch, t segments.

``python -m examples.cmran evaluate --checkpoint runs/demo/best.pt [--split test]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset

from . import registry, signals
from .amp import resolve_amp, run_amp
from .checkpoint import load_checkpoint, load_model_state
from .checks import ConfigError, check_data
from .config import AMP_MODES, LABEL_SOURCES
from .constants import SPLITS
from .datasets import build_splits, label_note, with_data
from .runtime import autocast, resolve_device, to_device


class NonFiniteOutputError(RuntimeError):
    """The model gave NaN or infinity in an evaluation: an error, never an accuracy."""


def non_finite_videos(output) -> torch.Tensor:
    """(B,) bool: the videos whose model output holds NaN or infinity in any of its tensors."""
    return ~torch.stack([torch.isfinite(x).flatten(1).all(1) for x in output if torch.is_tensor(x)]).all(0)


@torch.no_grad()
def evaluate_accuracy(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    amp: str = "none",
    batch_size: int = 64,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[float, int]:
    """(segment accuracy, number of segments) over the whole dataset.

    Under DDP each rank scores videos rank, rank + world_size, ... (no padding, no duplicates)
    and the counts are summed, so the result equals a single-process evaluation.
    """
    was_training = model.training
    model.eval()
    shard = Subset(dataset, range(rank, len(dataset), world_size)) if world_size > 1 else dataset
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    counts = torch.zeros(2, dtype=torch.float64, device=device)  # correct, total
    # the first video (dataset index) with a non-finite output, and how many: checked once, at the end
    first_bad = torch.full((), len(dataset), dtype=torch.int64, device=device)
    n_bad = torch.zeros((), dtype=torch.int64, device=device)
    start = 0
    for batch in loader:
        visual, audio, segment_labels, _ = to_device(batch, device)
        with autocast(device, amp):
            output = model(visual, audio)
        bad = non_finite_videos(output)
        index = rank + world_size * torch.arange(start, start + len(bad), device=device)
        first_bad = torch.minimum(first_bad, torch.where(bad, index, len(dataset)).min())
        n_bad += bad.sum()
        start += len(bad)
        pred = model.predict(output)
        counts[0] += (pred == segment_labels).sum()
        counts[1] += segment_labels.numel()
        signals.check()  # a signal that DataLoader internals swallowed stops here
    if world_size > 1:
        dist.all_reduce(counts)
        dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
        dist.all_reduce(n_bad)
    model.train(was_training)
    if int(n_bad):
        raise NonFiniteOutputError(
            f"the model's output is NaN or infinite on {int(n_bad)} of {len(dataset)} videos (first: item "
            f"{int(first_bad)} of the split): no accuracy can be given (amp={amp!r}; the inputs were checked, so "
            "the weights or the arithmetic overflowed)"
        )
    correct, total = counts.tolist()
    if not total:
        raise ValueError("evaluate_accuracy: the dataset holds no video, there is no accuracy to give")
    return correct / total, int(total)


def load_trained_model(path: str, device: torch.device, *, backend: str = "auto",
                       model: str | None = None) -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint (any ``--model``), in eval mode, and the checkpoint dict.

    ``model``: the model the caller expects (``--model``); None accepts the checkpoint's, another one
    raises ``ConfigError``.

    The attention backend does not change the weights: ``backend`` replaces the training run's, so a
    checkpoint trained with ``triton`` on a GPU evaluates anywhere.
    """
    ckpt = load_checkpoint(path)
    cfg = ckpt["model_config"]
    if model is not None and model != registry.model_name(cfg):
        raise ConfigError(f"--model {model}, but {str(path)!r} holds a run of --model {registry.model_name(cfg)} "
                          f"(leave --model out to use the checkpoint's)")
    if "backend" in {f.name for f in dataclasses.fields(cfg)}:
        cfg = dataclasses.replace(cfg, backend=backend)
    model = registry.build_model(cfg)
    load_model_state(model, ckpt["model"], path)
    return model.to(device).eval(), ckpt


# ---- CLI ----------------------------------------------------------------------------------------

def add_model_argument(p: argparse.ArgumentParser) -> None:
    """--model, and --labels (which a data directory's segment labels to use; shared by evaluate, predict and
    visualize)."""
    p.add_argument("--model", default=None, choices=registry.model_names(),
                   help="the model the checkpoint must hold (default: whichever it holds)")
    p.add_argument("--labels", default=None, choices=LABEL_SOURCES,
                   help="a data directory's segment labels: Annotations.txt or labels.h5 (default: the run's)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a best.pt / last.pt written by train")
    add_model_argument(p)
    p.add_argument("--split", default="test", choices=SPLITS, help="the split to score")
    p.add_argument("--data", default=None, help="override the checkpoint's data ('synthetic' or the AVE directory)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--amp", default=None, choices=AMP_MODES,
                   help="autocast mode (default: the training run's; a run trained with auto chooses again here)")
    p.add_argument("--batch-size", type=int, default=64, help="videos per forward pass")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")


def load_for_inference(args: argparse.Namespace, *, note_file=None):
    """(device, model, checkpoint, autocast mode, dataset) for ``args.checkpoint`` on ``args.split``.

    Shared by evaluate and predict: the model is rebuilt from its checkpoint, ``args.data`` may point the
    run at another copy of its data, and ``--amp`` (or the run's own, re-chosen here if it was ``auto``)
    is resolved for this device; an ``auto`` choice is printed to ``note_file`` (default stdout).
    """
    device = resolve_device(args.device)
    model, ckpt = load_trained_model(args.checkpoint, device, model=args.model)
    train_cfg = with_data(ckpt["train_config"], args.data, args.labels)
    requested = run_amp(train_cfg, args.amp)
    amp, note = resolve_amp(requested, device)
    if requested == "auto":
        print(note, file=note_file or sys.stdout)
    splits = build_splits(model.config, train_cfg, (args.split,))
    if label_note(splits) is not None:
        print(label_note(splits), file=sys.stderr)
    return device, model, ckpt, amp, splits[args.split]


def main(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_workers < 0:
        raise ConfigError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.data is not None:
        check_data(args.data)  # before the checkpoint is loaded
    device, model, ckpt, amp, dataset = load_for_inference(args, note_file=sys.stderr if args.json else sys.stdout)
    from .data.extracted import require_labels, require_rows

    require_labels(dataset, "evaluate")  # an unlabelled extract folder has no labels to score against
    require_rows(dataset, args.split, "evaluate")  # an empty split (extracted.py)
    acc, n = evaluate_accuracy(model, dataset, device=device, amp=amp, batch_size=args.batch_size,
                               num_workers=args.num_workers)
    result = {"checkpoint": args.checkpoint, "split": args.split, "accuracy": acc, "segments": n,
              "epoch": ckpt["epoch"], "model": registry.model_name(model.config), "setting": model.config.setting, "features": model.config.features}
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(f"{args.split} accuracy: {100 * acc:.2f}% ({n} segments; {args.checkpoint}, epoch {ckpt['epoch']})")
    return 0


__all__ = ["NonFiniteOutputError", "add_model_argument", "evaluate_accuracy", "load_for_inference", "load_trained_model",
           "non_finite_videos"]
