"""Per-video intermediate files: ``OUT/.extract/<video-id>.h5``, one per extracted video, written under a
temporary name and renamed when complete, so a re-run can skip what is done.

Axis legend: D whole seconds, h, w pool5 cells (7 x 7), C visual channels (512), E audio channels (128).

Each holds ``visual`` (D, h, w, C) and ``audio`` (D, E) (the per-second features, before windowing) and three
JSON attributes: ``settings`` (the convention, the weight files' SHA-256, the stored dtype: a re-run with other
settings is refused), ``source`` (the video's path, size and modification time: a changed video is extracted
again) and ``summary`` (durations, frame counts, notes).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..files import alive, umask
from .errors import WorkFolderError

WORK_DIR = ".extract"
FORMAT, VERSION = "avattn-ave-extract-video", 1


def work_path(out: Path, video_id: str) -> Path:
    return Path(out) / WORK_DIR / f"{video_id}.h5"


def source_signature(path: str | os.PathLike) -> dict:
    st = os.stat(path)
    return {"path": os.fspath(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_attrs(path: Path) -> dict:
    """{"settings", "source", "summary"} of a finished work file; WorkFolderError if it is not one."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise WorkFolderError(f"{path}: not an extraction work file (format {f.attrs.get('format')!r})")
            return {k: json.loads(f.attrs[k]) for k in ("settings", "source", "summary")}
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise WorkFolderError(f"{path}: unreadable work file ({exc}); delete it to extract that video again") from None


def settings_differences(found: dict, wanted: dict, prefix: str = "") -> list[str]:
    """'key: found -> wanted' for every leaf that differs."""
    out = []
    for key in sorted(set(found) | set(wanted)):
        a, b = found.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += settings_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def read_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(visual (D, h, w, C), audio (D, E)) of a work file, as stored."""
    import h5py

    with h5py.File(path, "r") as f:
        return f["visual"][()], f["audio"][()]


class WorkFile:
    """Writes one video's work file: ``create`` the datasets, fill them, ``commit`` (rename) or ``abort``."""

    def __init__(self, target: Path):
        import h5py

        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.{os.getpid()}-", suffix=".tmp",
                                   dir=self.target.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        os.chmod(self.tmp, 0o666 & ~umask())
        self.file = h5py.File(self.tmp, "w")

    def create(self, seconds: int, grid: tuple[int, int, int], audio_dim: int, dtype) -> None:
        self.visual = self.file.create_dataset("visual", (seconds, *grid), dtype=dtype, chunks=(1, *grid))
        self.audio = self.file.create_dataset("audio", (seconds, audio_dim), dtype=dtype)

    def commit(self, settings: dict, source: dict, summary: dict) -> None:
        self.file.attrs["format"] = FORMAT
        self.file.attrs["version"] = VERSION
        for key, value in (("settings", settings), ("source", source), ("summary", summary)):
            self.file.attrs[key] = json.dumps(value, sort_keys=True)
        self.file.close()
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete the temporary files (``.NAME.PID-XXXX.tmp``) that a killed run left in ``directory``."""
    removed = []
    if not Path(directory).is_dir():
        return removed
    for p in Path(directory).glob(".*.tmp"):
        pid = p.name[:-len(".tmp")].rsplit(".", 1)[-1].split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed

