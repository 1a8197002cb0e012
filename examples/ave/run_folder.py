"""A training run's folder (``--out``): what it may hold when a run starts, who owns it, and how a new run
takes the place of an earlier one.

``check`` refuses a folder that holds a run unless ``--resume`` or ``--overwrite`` says what to do with it;
``train`` calls it once before any work and again under the folder's lock (``claim``), which the run holds
for its whole life (``run_lock``). ``--overwrite`` removes nothing up front: the earlier run's files stay
until the new run's first epoch is saved, and are replaced then, all at once (``replace_earlier_run``), so
a new run that fails, diverges, runs out of disk or is interrupted before that leaves the earlier run as
it was.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from . import run_lock
from .checkpoint import RUN_FILES, checkpoint_file, run_files_in
from .checks import ConfigError, check_out_dir
from .files import atomic_write, atomic_writes, json_file, jsonl_file, remove_stale_temp_files, write_json, write_jsonl


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def check(out: str, resume: str | None, overwrite: bool) -> None:
    """--out, --resume ('auto' = OUT/last.pt, or a checkpoint path) and --overwrite agree with what the folder holds."""
    if resume is not None and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    check_out_dir(out)
    if resume not in (None, "auto") and not os.path.isfile(resume):
        raise ConfigError(f"--resume {resume!r}: no such checkpoint file")
    last = Path(out) / "last.pt"
    if resume == "auto" and not last.is_file():
        raise ConfigError(f"--resume: {str(last)!r} does not exist (nothing to resume in --out {out!r})")
    if resume not in (None, "auto") and last.exists() and not same_file(resume, last) and not overwrite:
        raise ConfigError(
            f"--out {out!r} already holds another run ({last}); resuming {resume!r} there would mix "
            f"the two runs' checkpoints: choose an --out without a run, or --resume {str(last)!r} to continue that one"
        )
    present = run_files_in(out)
    if resume is None and present and not overwrite:
        how = "pass --resume to continue it, --overwrite to start afresh" if last.exists() else \
            "pass --overwrite to replace them"
        raise ConfigError(f"--out {out!r} already holds a run ({', '.join(present)}); {how}, or choose another --out")


@contextlib.contextmanager
def claim(out: str, resume: str | None, overwrite: bool, *, master: bool):
    """Hold ``out``'s lock for the block (the master process; the others write nothing) and check the folder
    again: another run may have written it between the first check and the lock."""
    with run_lock.hold(out, "train", enabled=master):
        if master:
            check(out, resume, overwrite)
        yield


def prepare(out: Path, resume: str | None, config: dict, history: list[dict]) -> bool:
    """Make ``out`` ready for the run; True when it holds an earlier run that this fresh run replaces at its
    first save (then nothing is written or removed yet)."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out, RUN_FILES)  # of killed writes: the folder is locked by this run
    if resume is None and run_files_in(out):
        return True
    if resume is not None and not same_file(Path(resume).parent, out):
        # resuming into another directory: bring the run's best checkpoint along (never keep a stale one)
        source_best = Path(resume).parent / "best.pt"
        if source_best.is_file():
            best_bytes = source_best.read_bytes()
            atomic_write(out / "best.pt", lambda f: f.write(best_bytes))
        else:
            (out / "best.pt").unlink(missing_ok=True)
    write_json(out / "config.json", config)
    write_jsonl(out / "metrics.jsonl", history)
    return False


def replace_earlier_run(out: Path, state: dict, history: list[dict], config: dict, improved: bool) -> None:
    """A fresh run's first save in a folder that holds an earlier run (--overwrite): its checkpoints,
    metrics and config written whole first, then renamed into place together; then no file of the earlier
    run is left (its result.json, its best.pt when this epoch wrote none)."""
    atomic_writes([*([checkpoint_file(out / "best.pt", state)] if improved else []),
                   checkpoint_file(out / "last.pt", state), jsonl_file(out / "metrics.jsonl", history),
                   json_file(out / "config.json", config)])
    for name in ("result.json", *(() if improved else ("best.pt",))):
        (out / name).unlink(missing_ok=True)


__all__ = ["check", "claim", "prepare", "replace_earlier_run", "same_file"]
