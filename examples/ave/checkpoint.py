"""Checkpoints and run files: atomic writes, clear errors for corrupt or mismatched checkpoints,
and the RNG state that makes ``--resume`` continue exactly.

A checkpoint is a dict: format, version, model_config, train_config, model (state dict),
optimizer, scheduler, scaler, rng (one entry per DDP rank), epoch (completed), best_val,
best_epoch, history (the metrics.jsonl records so far), world_size; and model_extra (one entry per
rank: the model's state beyond its weights, e.g. PSP's stale AVPS targets; None for models without).
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from .checks import ConfigError
from .config import RESUMABLE_CHANGES, TrainConfig
from .files import atomic_write, remove_stale_temp_files, write_json, write_jsonl  # noqa: F401  (their old home)
from .registry import config_from_dict

FORMAT = "avattn-cmran-checkpoint"
VERSION = 1
REQUIRED_KEYS = (
    "format", "version", "model_config", "train_config", "model", "optimizer", "scheduler", "scaler",
    "rng", "epoch", "best_val", "best_epoch", "history", "world_size",
)

# What a run writes into --out; a fresh run (train, import-reference) refuses a folder holding any of them
# unless --overwrite.
RUN_FILES = ("config.json", "metrics.jsonl", "last.pt", "best.pt", "result.json")


def run_files_in(out: str | os.PathLike) -> list[str]:
    """The run files (``RUN_FILES``) that the folder ``out`` holds already."""
    return [name for name in RUN_FILES if (Path(out) / name).exists()]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, of another format, or made for another model/run."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    atomic_write(*checkpoint_file(path, state))


def checkpoint_file(path: str | os.PathLike, state: dict) -> tuple:
    """``(path, write, need_bytes)`` of a checkpoint, for ``files.atomic_writes``."""
    return path, lambda f: torch.save(state, f), lambda: _nbytes(state)


def _nbytes(tree) -> int:
    return sum(t.numel() * t.element_size() for _, t in _tensors(tree))


_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint", map_location="cpu", how: str = ""):
    """``torch.load(path, weights_only=True)``; ``CheckpointError`` saying what the file is when it is not
    something torch.save wrote with tensors and plain containers only (``.pickles_code``: the file pickles
    Python objects). The message never passes on torch's advice to load with ``weights_only=False``: that
    would run code from the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, foreign pickle ...
        pickled = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        it = (f"pickles Python objects ({pickled.group(1)}) that only running code from the file could rebuild; "
              "refused: avattn never runs code from a file it reads") if pickled else _what_it_is(path, str(exc))
        error = CheckpointError(f"{what} {str(path)!r} could not be read{how}: it {it}")
        error.pickles_code = pickled is not None
        raise error from None


def _what_it_is(path: Path, message: str) -> str:
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "is empty (0 bytes), not a checkpoint"
    if head.startswith(_ZIP) and "Weights only load failed" in message:
        return ("is a zip archive whose pickle holds more than tensors and plain containers; refused: avattn "
                "never unpickles anything else")
    if head.startswith(_ZIP):
        return f"is a zip archive torch cannot read, truncated or corrupt ({message.split('.')[0].strip()})"
    if head.lstrip()[:1] in (b"{", b"["):
        return "holds JSON text, not a checkpoint (torch.save writes a zip archive)"
    if head.startswith(_PICKLE):
        return ("is a Python pickle, not a torch.save checkpoint of tensors; refused: avattn never unpickles "
                "anything but tensors and plain containers")
    return f"is not a checkpoint: neither a zip archive (torch.save's format) nor a pickle (it begins {head[:8].hex(' ')})"


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and sanity-check a checkpoint; raises ``CheckpointError`` with what is wrong."""
    path = Path(path)
    ckpt = read_torch_file(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a training checkpoint of this pipeline (no format={FORMAT!r} entry)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint version {ckpt.get('version')!r}, this code reads {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks the entries {missing}")
    try:
        ckpt["model_config"] = config_from_dict(ckpt["model_config"])
        ckpt["train_config"] = TrainConfig.from_dict(ckpt["train_config"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} holds an invalid config: {exc}") from exc
    return ckpt


def load_model_state(model: torch.nn.Module, state: dict, path: str | os.PathLike) -> None:
    """``load_state_dict(strict=True)``, reporting an architecture mismatch in one sentence."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            detail.append(f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        if wrong:
            k = wrong[0]
            detail.append(f"shape of {k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}")
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this model's architecture: {'; '.join(detail)}"
        )
    check_finite(state, path, "weights")
    model.load_state_dict(state)


def check_finite(tree, path: str | os.PathLike, what: str) -> None:
    """Refuse a checkpoint whose tensors (in nested dicts/lists) hold NaN or infinity."""
    for key, value in _tensors(tree):
        if value.is_floating_point() and not torch.isfinite(value).all():
            n = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds non-finite {what}: {key} has {n} NaN/infinite values of "
                f"{value.numel()} (a diverged or corrupted run); refusing to use it"
            )


def _tensors(tree, key: str = ""):
    if isinstance(tree, torch.Tensor):
        yield key, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _tensors(v, f"{key}.{k}" if key else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _tensors(v, f"{key}[{i}]")


def check_resumable(ckpt: dict, model_config, train_config: TrainConfig, path) -> None:
    """The run being resumed must have the same architecture and recipe (epochs etc. may change)."""
    if ckpt["model_config"] != model_config:
        a, b = ckpt["model_config"].to_dict(), model_config.to_dict()
        diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: its model config differs (field: (checkpoint, now)) {diff}"
        )
    was, now = ckpt["train_config"].data, train_config.data
    if now == "synthetic" and was != "synthetic":
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: the run trained on the data directory {was!r}, but --data is "
            f"missing (it defaults to 'synthetic'): pass --data {was} (or where that directory is now)"
        )
    if was == "synthetic" and now != "synthetic":
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: the run trained on synthetic data, not on --data {now!r}: "
            "leave --data out to continue it"
        )
    if train_config.epochs < ckpt["epoch"]:
        raise ConfigError(
            f"--epochs {train_config.epochs} is below the {ckpt['epoch']} epochs {str(path)!r} has completed: "
            f"pass --epochs {ckpt['epoch']} or more (a resumed run cannot be shortened)"
        )
    a, b = ckpt["train_config"].to_dict(), train_config.to_dict()
    # amp_auto only says how amp was chosen: the amp itself is compared (a bf16 run resumes under an auto -> bf16)
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in (*RESUMABLE_CHANGES, "amp_auto")}
    if diff:
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: its training recipe differs (field: (checkpoint, now)) {diff}; "
            f"only {list(RESUMABLE_CHANGES)} may change on resume"
        )


# ---- RNG state -------------------------------------------------------------------------------

def rng_state(data_generator: torch.Generator) -> dict:
    """This process's RNG states: python, numpy, torch (CPU and CUDA), and the data-order generator."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "data": data_generator.get_state(),
    }


def set_rng_state(state: dict, data_generator: torch.Generator) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state({
        "bit_generator": n["bit_generator"],
        "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
        "has_gauss": n["has_gauss"],
        "gauss": n["gauss"],
    })
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    data_generator.set_state(state["data"].cpu())
