"""One process owns a folder at a time (examples/ave/run_lock.py, issue 22 item 2): while a training runs in
--out, a second training (fresh with --overwrite, or --resume) and an export into it are refused, naming the
holder's PID, and write nothing; the lock of a killed process is taken over.

Two real processes: the holder is a ``python -m examples.cmran train`` subprocess, the contenders run in
this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

from examples.ave.checkpoint import load_checkpoint

LOCK_NAME = ".avattn.lock"  # examples.ave.run_lock.LOCK_NAME

pytestmark = pytest.mark.xdist_group("cmran_train")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "synthetic", "--subset", "8", "--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_run_folder_belongs_to_one_process_and_a_dead_holders_lock_is_taken_over(capsys, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    holder = subprocess.Popen([sys.executable, "-m", "examples.cmran", "train", *TINY, "--epochs", "1000",
                               "--out", str(out)], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        for line in holder.stdout:  # epoch 1 is saved: last.pt exists, so --resume passes the first checks
            if line.startswith("epoch   1/"):
                break
        for extra in (["--overwrite"], ["--resume"]):
            code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--seed", "7", "--out", out, *extra)
            assert code == 2 and f"is in use by another process (PID {holder.pid}, train since" in err, (extra, err)
        code, _, err = run(capsys, "export-synthetic", "--out", out, "--num-videos", "3")
        assert code == 2 and f"PID {holder.pid}" in err, err
        assert not (out / "visual_feature.h5").exists() and not (out / "labels.h5").exists()
        assert load_checkpoint(out / "last.pt")["train_config"].seed == 0
    finally:
        holder.kill()  # SIGKILL: no clean-up, the lock file stays behind naming a dead process
        holder.communicate()
    assert (out / LOCK_NAME).exists()
    epoch = load_checkpoint(out / "last.pt")["epoch"]
    code, _, err = run(capsys, "train", *TINY, "--epochs", epoch + 1, "--out", out, "--resume")
    assert code == 0, err
    assert load_checkpoint(out / "last.pt")["epoch"] == epoch + 1 and not (out / LOCK_NAME).exists()


def test_the_lock_refuses_a_second_holder_and_leaves_no_trace(tmp_path):
    from examples.ave.run_lock import LOCK_NAME, FolderInUseError, hold

    folder = tmp_path / "new" / "folder"
    with hold(folder, "export-synthetic"):
        assert (folder / LOCK_NAME).is_file()
        with pytest.raises(FolderInUseError, match=rf"in use by another process \(PID {os.getpid()}, export-synthetic"):
            with hold(folder, "train"):
                pass
    assert not folder.exists()  # created by the lock and left empty: removed with it
    with hold(folder, "train", enabled=False):
        assert not folder.exists()
