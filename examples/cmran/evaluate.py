"""Segment accuracy of a model on a split, and the ``evaluate`` subcommand.

Axis legend: b batch, t segments.

``python -m examples.cmran evaluate --checkpoint runs/demo/best.pt [--split test]``
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset

from .amp import resolve_amp, run_amp
from .checkpoint import CheckpointError, load_checkpoint, load_model_state
from .config import AMP_MODES, ConfigError, ModelConfig, TrainConfig, check_data
from .model import CMRAN
from .models import AnyConfig, build_model, model_name

SPLITS = ("train", "val", "test")


class NonFiniteOutputError(RuntimeError):
    """The model gave NaN or infinity in an evaluation: an error, never an accuracy."""


def resolve_device(name: str, local_rank: int = 0, *, distributed: bool = False) -> torch.device:
    """The torch device of ``--device`` (auto, cpu, cuda, cuda:N, mps); ConfigError if it cannot serve.

    ``auto`` and ``cuda`` give process ``local_rank`` its own GPU; ``cuda:N`` is refused under torchrun.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        elif distributed:
            raise ConfigError(f"device={name!r} under torchrun would put every process on one GPU: "
                              "use --device cuda (each process takes cuda:LOCAL_RANK)")
        if device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device={name!r} but MPS is not available")
    elif device.type != "cpu":
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}")
    return device


def with_data(train_cfg: TrainConfig, data: str | None) -> TrainConfig:
    """The training run's data config with ``data`` swapped in (synthetic-only options dropped for a directory)."""
    if data is None or data == train_cfg.data:
        return train_cfg
    synthetic = data == "synthetic"
    cfg = dataclasses.replace(train_cfg, data=data, difficulty=train_cfg.difficulty if synthetic else None,
                              data_seed=(train_cfg.data_seed or 0) if synthetic else None)
    cfg.validate()
    return cfg


def autocast(device: torch.device, amp: str):
    """bf16/fp16 autocast on the device, or nothing for ``amp="none"``; ``auto`` is resolved for the device."""
    amp = resolve_amp(amp, device)[0]
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def build_splits(model_cfg: AnyConfig, train_cfg: TrainConfig, splits: tuple[str, ...] = SPLITS) -> dict[str, Dataset]:
    """{"train", "val", "test"} datasets of the data package (or those of ``splits``); the first ``subset``
    videos if set. A data directory's features are checked for NaN/inf here, before any is used."""
    from .data import build_datasets  # imported here: the model and config do not need the data package

    splits = build_datasets(
        train_cfg.data,
        setting=model_cfg.setting,
        features=model_cfg.features,
        seed=train_cfg.data_seed,
        difficulty=train_cfg.difficulty,
        splits=splits,
    )
    if train_cfg.subset is not None:
        splits = {k: Subset(d, range(min(train_cfg.subset, len(d)))) for k, d in splits.items()}
    return splits


def to_device(batch, device: torch.device):
    """A batch (visual, audio, segment_labels, video_label) on ``device``."""
    visual, audio, segment_labels, video_labels = batch
    nb = device.type == "cuda"
    return (visual.to(device, non_blocking=nb), audio.to(device, non_blocking=nb),
            segment_labels.to(device, non_blocking=nb), video_labels.to(device, non_blocking=nb))


def non_finite_videos(output) -> torch.Tensor:
    """(B,) bool: the videos whose model output holds NaN or infinity in any of its tensors."""
    return ~torch.stack([torch.isfinite(x).flatten(1).all(1) for x in output if torch.is_tensor(x)]).all(0)


@torch.no_grad()
def evaluate_accuracy(
    model: CMRAN | torch.nn.Module,
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
    if model is not None and model != model_name(cfg):
        raise ConfigError(f"--model {model}, but {str(path)!r} holds a run of --model {model_name(cfg)} "
                          f"(leave --model out to use the checkpoint's)")
    model = build_model(dataclasses.replace(cfg, backend=backend) if isinstance(cfg, ModelConfig) else cfg)
    load_model_state(model, ckpt["model"], path)
    return model.to(device).eval(), ckpt


# ---- CLI ----------------------------------------------------------------------------------------

def add_model_argument(p: argparse.ArgumentParser) -> None:
    from .models import MODELS

    p.add_argument("--model", default=None, choices=MODELS,
                   help="the model the checkpoint must hold (default: whichever it holds)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a best.pt / last.pt written by train")
    add_model_argument(p)
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--data", default=None, help="override the checkpoint's data ('synthetic' or the AVE directory)")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default=None, choices=AMP_MODES,
                   help="default: the training run's (a run trained with auto chooses again for this device)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")


def load_for_inference(args: argparse.Namespace, *, note_file=None):
    """(device, model, checkpoint, autocast mode, dataset) for ``args.checkpoint`` on ``args.split``.

    Shared by evaluate and predict: the model is rebuilt from its checkpoint, ``args.data`` may point the
    run at another copy of its data, and ``--amp`` (or the run's own, re-chosen here if it was ``auto``)
    is resolved for this device; an ``auto`` choice is printed to ``note_file`` (default stdout).
    """
    device = resolve_device(args.device)
    model, ckpt = load_trained_model(args.checkpoint, device, model=args.model)
    train_cfg = with_data(ckpt["train_config"], args.data)
    requested = run_amp(train_cfg, args.amp)
    amp, note = resolve_amp(requested, device)
    if requested == "auto":
        print(note, file=note_file or sys.stdout)
    return device, model, ckpt, amp, build_splits(model.config, train_cfg, (args.split,))[args.split]


def main(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_workers < 0:
        raise ConfigError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.data is not None:
        check_data(args.data)  # before the checkpoint is loaded
    device, model, ckpt, amp, dataset = load_for_inference(args, note_file=sys.stderr if args.json else sys.stdout)
    acc, n = evaluate_accuracy(model, dataset, device=device, amp=amp, batch_size=args.batch_size,
                               num_workers=args.num_workers)
    result = {"checkpoint": args.checkpoint, "split": args.split, "accuracy": acc, "segments": n,
              "epoch": ckpt["epoch"], "model": model_name(model.config), "setting": model.config.setting, "features": model.config.features}
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(f"{args.split} accuracy: {100 * acc:.2f}% ({n} segments; {args.checkpoint}, epoch {ckpt['epoch']})")
    return 0


__all__ = ["CheckpointError", "NonFiniteOutputError", "non_finite_videos", "autocast", "with_data", "build_splits", "evaluate_accuracy", "load_for_inference", "load_trained_model", "resolve_device"]
