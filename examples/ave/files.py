"""Every file the pipeline writes goes through here: a temporary name in the same folder, fsync, then
``os.replace``, so a file is either its old self or its whole new self.

``atomic_path`` is the one write path (``atomic_write`` for a Python file object, the exporter's HDF5
files directly). When a write fails, its temporary file is removed and the previous file is left as it
was; a write that runs out of space (ENOSPC, or a quota) raises ``NoSpaceError`` naming the device, the
file, the space it needed and the space left, however the writer reported it (torch's zip writer turns
the ``OSError`` into an ``inline_container.cc`` RuntimeError, HDF5 into its own message). A signal during
``atomic_write`` is held until the file is written (``signals.deferred``).

The temporary name ``.NAME.PID-XXXXXXXX.tmp`` carries the writer's PID, so a later run can tell the
leftovers of a killed write from a live one (``remove_stale_temp_files``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from . import signals

_FULL = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(RuntimeError):
    """A write ran out of disk space: names the device, the file, the space needed and the space left."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, need_bytes=None):
    """A temporary path beside ``path`` for the block to write; renamed over ``path`` when the block ends,
    removed (``path`` untouched) when it raises. ``need_bytes``: the file's expected size (int or a
    callable), for the message of a write that runs out of space."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # the mode a plain open() gives, not mkstemp's 0o600
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:  # also KeyboardInterrupt: the old file stays as it was
        full = _out_of_space(exc)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if signals.pending() is not None and not isinstance(exc, KeyboardInterrupt):
            raise signals.Stop(signals.pending()) from exc  # a signal that surfaced as the writer's own error
        if full is not None and not isinstance(exc, NoSpaceError):  # (a file written beside this one ran out)
            raise NoSpaceError(no_space_message(path, need_bytes)) from full
        raise


class _Recording:
    """Writes a file through ``write(file)``, remembering the OSError of a failed write (writers that re-raise
    it as another error, like torch's zip writer, lose its errno) and how many bytes were asked for."""

    def __init__(self) -> None:
        self._f, self.error, self.attempted = None, None, 0

    def write_file(self, path: Path, write) -> None:
        with open(path, "wb") as self._f:
            try:
                write(self)
                self._f.flush()
            except BaseException as exc:
                if self.error is not None and self.error is not exc and not isinstance(exc, OSError):
                    raise self.error from exc
                raise

    def size(self) -> int:
        return self.attempted

    def write(self, data) -> int:
        self.attempted += len(data) if hasattr(data, "__len__") else 0
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def atomic_write(path: str | os.PathLike, write, need_bytes=None) -> None:
    """``write(file)`` into a temporary file beside ``path``, fsync, then ``os.replace``; a signal that
    arrives meanwhile is raised once the file is in place."""
    atomic_writes([(path, write, need_bytes)])


def atomic_writes(writes) -> None:
    """Several files, each ``(path, write, need_bytes)`` as for ``atomic_write``, all written under their
    temporary names first and then renamed into place: when one write fails, no file is replaced."""
    with signals.deferred(), contextlib.ExitStack() as stack:
        for path, write, need_bytes in writes:
            recorder = _Recording()
            tmp = stack.enter_context(atomic_path(path, need_bytes=recorder.size if need_bytes is None else need_bytes))
            recorder.write_file(tmp, write)


def write_json(path: str | os.PathLike, obj) -> None:
    """Strict JSON: a NaN or infinity raises ValueError instead of writing a file other tools cannot read."""
    atomic_write(*json_file(path, obj))


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    atomic_write(*jsonl_file(path, records))


def json_file(path: str | os.PathLike, obj) -> tuple:
    """``(path, write, need_bytes)`` of a strict JSON file, for ``atomic_writes``."""
    data = (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()
    return path, lambda f: f.write(data), len(data)


def jsonl_file(path: str | os.PathLike, records: list[dict]) -> tuple:
    data = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records).encode()
    return path, lambda f: f.write(data), len(data)


def _fsync(path: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _out_of_space(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s chain that says the disk (or a quota) is full, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno in _FULL or "No space left on device" in str(exc)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def no_space_message(path: Path, need_bytes=None, *, what: str = "writing") -> str:
    need = need_bytes() if callable(need_bytes) else need_bytes
    free = free_bytes(path.parent)
    state = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
    need_text = f"need about {_mb(need)}, " if need else ""
    return (f"no space left on device {mount_point(path.parent)} {what} {path} ({need_text}{_mb(free)} free); "
            f"the temporary file was removed and {state}")


def free_bytes(directory: str | os.PathLike) -> int:
    return shutil.disk_usage(directory).free


def mount_point(directory: str | os.PathLike) -> str:
    path = os.path.abspath(directory)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def _mb(n: int | None) -> str:
    return f"{(n or 0) / 1e6:.1f} MB"


def check_free_space(directory: str | os.PathLike, need: int, what: str) -> None:
    """``NoSpaceError`` before any byte is written when ``directory`` has less than ``need`` bytes free."""
    free = free_bytes(directory)
    if free < need:
        raise NoSpaceError(f"no space left on device {mount_point(directory)} for {what}: it needs about "
                           f"{_mb(need)}, {_mb(free)} free; nothing was written")


# The tail of a temporary name after ".NAME.": atomic_path's "PID-XXXXXXXX.tmp" (earlier versions:
# "XXXXXXXX.tmp", no PID; the exporter's "tmp-PID").
_TEMP_TAIL = re.compile(r"(?:(?P<pid>\d+)-)?[a-z0-9_]+\.tmp|tmp-(?P<xpid>\d+)")


def remove_stale_temp_files(directory: str | os.PathLike, names) -> list[Path]:
    """Delete the temporary files that killed writes of ``names`` left in ``directory``; return them.

    A temporary file is stale when the process named in it is no longer alive (or, for names without a
    PID, always: the folder is locked by the process that calls this, ``run_lock``).
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
            if (pid is None or not alive(int(pid))) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
            break
    return removed


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError):
        return False
    return True


__all__ = ["NoSpaceError", "alive", "atomic_path", "atomic_write", "atomic_writes", "check_free_space", "free_bytes", "umask", "json_file", "jsonl_file",
           "mount_point", "no_space_message", "remove_stale_temp_files", "write_json", "write_jsonl"]
