"""Checkpoints and run files: atomic writes, clear errors for corrupt or mismatched checkpoints,
and the RNG state that makes ``--resume`` continue exactly.

A checkpoint is a dict: format, version, model_config, train_config, model (state dict),
optimizer, scheduler, scaler, rng (one entry per DDP rank), epoch (completed), best_val,
best_epoch, history (the metrics.jsonl records so far), world_size; and model_extra (one entry per
rank: the model's state beyond its weights, e.g. PSP's stale AVPS targets; None for models without).
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from .checks import ConfigError
from .config import RESUMABLE_CHANGES, TrainConfig
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


def atomic_write(path: str | os.PathLike, write) -> None:
    """``write(file)`` into a temporary file in the same directory, fsync, then ``os.replace``.

    The temporary name ``.NAME.PID-XXXXXXXX.tmp`` carries the writer's PID, so a later run can tell
    the leftovers of a killed write from a live one (``remove_stale_temp_files``). The file gets the
    mode a plain ``open`` would give it (0o666 less the umask), not ``mkstemp``'s 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: the old file stays as it was
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


# The tail of a temporary name after ".NAME.": atomic_write's "PID-XXXXXXXX.tmp" (earlier versions:
# "XXXXXXXX.tmp", no PID) and the exporter's "tmp-PID".
_TEMP_TAIL = re.compile(r"(?:(?P<pid>\d+)-)?[a-z0-9_]+\.tmp|tmp-(?P<xpid>\d+)")


def remove_stale_temp_files(directory: str | os.PathLike, names) -> list[Path]:
    """Delete the temporary files that killed writes of ``names`` left in ``directory``; return them.

    A temporary file is stale when the process named in it is no longer alive (or, for names
    without a PID, always: only one run may own a directory, and it is starting now).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in sorted(directory.iterdir()):
        for name in names:
            prefix = f".{name}."
            match = _TEMP_TAIL.fullmatch(entry.name[len(prefix):]) if entry.name.startswith(prefix) else None
            if match is None:
                continue
            pid = match.group("pid") or match.group("xpid")
            if (pid is None or not _alive(int(pid))) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
            break
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError):
        return False
    return True


def write_json(path: str | os.PathLike, obj) -> None:
    """Strict JSON: a NaN or infinity raises ValueError instead of writing a file other tools cannot read."""
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()))


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
    atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and sanity-check a checkpoint; raises ``CheckpointError`` with what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, foreign pickle ...
        raise CheckpointError(
            f"checkpoint {str(path)!r} could not be read (corrupt or truncated file?): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
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
