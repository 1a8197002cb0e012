"""Which data a run trains on, and whether it is still the same.

A data directory's identity (``identity``) is, per file the loader reads, its size and a fingerprint (the
whole file below 4 MiB, else 16 blocks of 64 KiB spread over it), plus where the segment labels came from.
It is recorded in every checkpoint (``data_identity``); ``--resume`` refuses other data (``check_resumed``)
unless ``--allow-new-data``. A checkpoint without the record (written before it existed) resumes as before,
with a note. Synthetic data needs no record: its seed and difficulty are part of the recipe.

While a run reads its data, ``DataWatch`` compares each file's device, inode, size and modification time
with what they were when the run opened them, at every epoch's start and end and before the test: a file
truncated, rewritten or renamed over stops the run (``DataChangedError``) before the epoch that read it is
saved.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from .checkpoint import CheckpointError
from .data.meta import AVEDataError
from .data.release import AUDIO, LABELS, MIL, NOISY_AUDIO, NOISY_LABELS, NOISY_VISUAL, ORDER_FILES, VISUAL

WHOLE_FILE = 4 << 20  # files up to this size are fingerprinted whole
BLOCKS, BLOCK = 16, 64 << 10


class DataChangedError(AVEDataError):
    """A data file changed while a run was using it."""


def data_files(setting: str) -> tuple[str, ...]:
    """The names the release loader reads for ``setting`` (those present are watched and fingerprinted)."""
    names = (VISUAL, AUDIO, LABELS, *ORDER_FILES.values(), "Annotations.txt", "categories.txt")
    return names + ((MIL, NOISY_LABELS, NOISY_VISUAL, NOISY_AUDIO) if setting == "weak" else ())


def fingerprint(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        if size <= WHOLE_FILE:
            h.update(f.read())
        else:
            for k in range(BLOCKS):
                f.seek((size - BLOCK) * k // (BLOCKS - 1))
                h.update(f.read(BLOCK))
    return h.hexdigest()


def identity(data: str, setting: str, label_source: str | None) -> dict | None:
    """The record of a data directory (None for synthetic data)."""
    if data == "synthetic":
        return None
    root = Path(data)
    files = {name: {"bytes": (root / name).stat().st_size, "fingerprint": fingerprint(root / name)}
             for name in data_files(setting) if (root / name).is_file()}
    return {"files": files, "labels": label_source}


def differences(then: dict, now: dict) -> list[str]:
    """What differs between two records, one phrase per file."""
    out = []
    for name in dict.fromkeys([*then["files"], *now["files"]]):  # the loader's order: the features first
        a, b = then["files"].get(name), now["files"].get(name)
        if a is None or b is None:
            out.append(f"{name}: {'absent' if a is None else 'present'} then, {'absent' if b is None else 'present'} now")
        elif a["bytes"] != b["bytes"]:
            out.append(f"{name}: {a['bytes']} bytes then, {b['bytes']} now")
        elif a["fingerprint"] != b["fingerprint"]:
            out.append(f"{name}: the same size, other content")
    if then.get("labels") != now.get("labels"):
        out.append(f"segment labels from {then.get('labels')} then, from {now.get('labels')} now")
    return out


def check_resumed(recorded, current: dict | None, path, data: str, allow_new_data: bool) -> tuple[str | None, bool]:
    """(a note to print or None, whether the run continues on other data): refuses other data than the run
    trained on (``CheckpointError`` naming what differs) unless ``allow_new_data``; a checkpoint without the
    record (written before it existed) resumes with a note."""
    if current is None:
        return None, False
    if recorded is None:
        return (f"note: {path} records no data identity (written before avattn recorded one), so --data {data} "
                "cannot be checked against the data the run trained on"), False
    diff = differences(recorded, current)
    if not diff:
        return None, False
    shown = "; ".join(diff[:3]) + (f"; {len(diff) - 3} more" if len(diff) > 3 else "")
    if allow_new_data:
        return (f"note: --allow-new-data: resuming on other data than the run trained on ({shown}); best.pt is "
                "now chosen among the epochs on this data"), True
    raise CheckpointError(
        f"cannot resume from {str(path)!r}: the run trained on other data than --data {data!r} holds ({shown}), "
        "and its val accuracies do not compare with this data's: pass --data with the run's data, or "
        "--allow-new-data to continue on this data anyway"
    )


class DataWatch:
    """The data files of a run as it opened them; ``check`` raises ``DataChangedError`` when one changed."""

    def __init__(self, data: str, setting: str) -> None:
        self.root = None if data == "synthetic" else Path(data)
        self.seen = {} if self.root is None else {
            name: _stat(self.root / name) for name in data_files(setting) if (self.root / name).is_file()}

    def check(self, when: str) -> None:
        for name, then in self.seen.items():
            now = _stat(self.root / name)
            if now != then:
                raise DataChangedError(f"{self.root / name}: the data changed while the run was using it "
                                       f"({_change(then, now)}); the run stopped {when}")


def _stat(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _change(then: tuple, now: tuple | None) -> str:
    if now is None:
        return "it was removed"
    if now[:2] != then[:2]:
        return "another file was put in its place"
    if now[2] != then[2]:
        return f"its size went from {then[2]} to {now[2]} bytes"
    return f"it was modified at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now[3] / 1e9))}"


__all__ = ["DataChangedError", "DataWatch", "check_resumed", "data_files", "differences", "fingerprint", "identity"]
