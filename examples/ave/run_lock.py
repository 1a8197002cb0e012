"""One process owns a folder at a time: ``train`` (fresh or ``--resume``) its ``--out`` for the run's life,
``export-synthetic`` and ``import-reference`` theirs while they write.

The lock is an ``flock`` on ``FOLDER/.avattn.lock``, a file that names its holder (PID, command, start
time). A second process is refused with a message naming the holder's PID. The kernel releases the lock
when its holder dies, however it dies, so a lock file left by a killed process is simply taken over. The
holder removes the file when it is done (and the folder, when it created it and nothing else was written).
Where ``fcntl`` is missing (Windows) folders are not locked.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from .checks import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".avattn.lock"


class FolderInUseError(ConfigError):
    """Another live process holds the folder's lock."""


@contextlib.contextmanager
def hold(folder: str | os.PathLike, command: str, flag: str = "--out", *, enabled: bool = True):
    """Own ``folder`` (created if missing) for the block; ``FolderInUseError`` when another process does."""
    if not enabled or fcntl is None:
        yield
        return
    folder = Path(folder)
    created = not os.path.lexists(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = _acquire(folder / LOCK_NAME, command, f"{flag} {str(folder)!r}")
    try:
        yield
    finally:
        if _same_file(fd, folder / LOCK_NAME):  # before unlocking: a waiter that opened this file retries
            os.unlink(folder / LOCK_NAME)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):  # only an empty folder: nothing of this run was written
                folder.rmdir()


def _acquire(path: Path, command: str, where: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUseError(f"{where} is in use by another process ({_holder(path)}): wait for it to end, "
                                   "or choose another folder") from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder removed this file as we opened it: lock the file that has the name now
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "command": command,
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def _holder(path: Path) -> str:
    """'PID 1234, train since 2024-01-01 12:00:00', read from the lock file (which its holder may be writing)."""
    for _ in range(20):
        try:
            info = json.loads(path.read_text())
            return f"PID {info['pid']}, {info['command']} since {info['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "PID unknown"


__all__ = ["LOCK_NAME", "FolderInUseError", "hold"]
