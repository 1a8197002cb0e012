"""A size-limited file system for the tests of a full disk: ``small_disk`` mounts a 40 MB tmpfs (root only;
the test is skipped, with the reason, where mounting is not permitted) and unmounts it afterwards.

A test module imports the fixture (``from small_disk import mount_small_disk  # noqa: F401``) and takes
``small_disk`` (the mounted folder) as an argument.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

SIZE_MB = 40


@pytest.fixture(name="small_disk")
def mount_small_disk(tmp_path):
    if sys.platform != "linux" or shutil.which("mount") is None:
        pytest.skip("a size-limited tmpfs needs Linux and mount(8)")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {SIZE_MB} MB tmpfs here (root is needed): {done.stderr.strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk, leave_bytes: int) -> None:
    """Take all of ``disk``'s free space but ``leave_bytes``."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        left = free - leave_bytes
        while left > 0:
            left -= f.write(chunk[: min(len(chunk), left)])
