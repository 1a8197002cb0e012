"""A full disk (examples/ave/files.py, issue 22 item 7), on a 40 MB tmpfs: every write ends with "no space
left on device DEVICE writing FILE (need about N MB, M MB free)", exit status 1, the temporary file removed
and the previous file intact (training: last.pt, and the run resumes from it); an export that cannot fit is
refused before it writes anything, and one that runs out of room midway ends the same clean way (HDF5 used
to abort the process with ``free(): invalid pointer`` and leave its temporary file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)
from small_disk import fill, mount_small_disk  # noqa: F401  (the fixture acts where imported)

from examples.ave.checkpoint import load_checkpoint

pytestmark = pytest.mark.xdist_group("cmran_train")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "synthetic", "--subset", "8", "--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8"]


def _temporary(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if "tmp" in p.name]


def test_a_json_write_on_a_full_disk_keeps_the_previous_file(small_disk):
    from examples.ave.files import NoSpaceError, write_json

    write_json(small_disk / "config.json", {"run": 1})
    fill(small_disk, 64 << 10)
    with pytest.raises(NoSpaceError) as err:
        write_json(small_disk / "config.json", {"run": 2, "padding": "x" * (1 << 20)})
    msg = str(err.value)
    assert msg.startswith(f"no space left on device {small_disk} writing {small_disk / 'config.json'} (need about ")
    assert "the previous config.json is intact" in msg
    assert (small_disk / "config.json").read_text() == '{\n  "run": 1\n}\n' and not _temporary(small_disk)
    # files written together (a run replacing an earlier one): one that does not fit, and none is replaced
    from examples.ave.files import atomic_writes, json_file

    (small_disk / "small.json").write_text("old\n")
    with pytest.raises(NoSpaceError, match=f"writing {small_disk / 'big.json'} "):
        atomic_writes([json_file(small_disk / "small.json", {"new": 1}), json_file(small_disk / "big.json", "x" * (1 << 20))])
    assert (small_disk / "small.json").read_text() == "old\n" and not (small_disk / "big.json").exists()
    assert not _temporary(small_disk)


def test_training_on_a_full_disk_stops_with_the_reason_and_resumes_elsewhere(capsys, small_disk, tmp_path):
    # AVEL's checkpoints are about 16 MB: epoch 1's best.pt and last.pt fit in 40 MB, epoch 2's best.pt does not
    out = small_disk / "run"
    argv = ["train", "--model", "avel", *TINY, "--select-on", "last", "--out"]
    code, _, err = run(capsys, *argv, out, "--epochs", "3")
    assert code == 1 and "Traceback" not in err and "inline_container" not in err, err
    error, stopped = err.strip().splitlines()[-2:]
    assert error.startswith(f"error: no space left on device {small_disk} writing {out / 'best.pt'} (need about ")
    assert stopped.startswith(f"stopped: {out / 'last.pt'} holds epoch 1 of 3") and stopped.endswith("--resume")
    assert load_checkpoint(out / "last.pt")["epoch"] == 1 and not _temporary(out)
    moved = tmp_path / "moved"  # the run, resumed where there is room
    shutil.copytree(out, moved)
    code, _, err = run(capsys, *argv, moved, "--epochs", "2", "--resume")
    assert code == 0, err
    assert load_checkpoint(moved / "last.pt")["epoch"] == 2


def _export(out: Path, videos: int, *, check_space: bool) -> subprocess.Popen:
    """export-synthetic in a subprocess (the HDF5 abort of a full disk would take this process along)."""
    script = ("import sys; import examples.ave.export as e\n"
              f"if not {check_space}: e.check_free_space = lambda *a, **k: None\n"
              "from examples.cmran.__main__ import main\n"
              f"sys.exit(main(['export-synthetic', '--out', {str(out)!r}, '--num-videos', '{videos}']))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_an_export_that_cannot_fit_is_refused_and_one_that_runs_out_ends_cleanly(small_disk):
    # 400 videos: 401 MB of visual features, far more than the disk; 40 videos (40 MB) with 8 MB left: out midway
    fill(small_disk, 8 << 20)
    big, midway = small_disk / "big", small_disk / "midway"
    refused, ran_out = _export(big, 400, check_space=True), _export(midway, 40, check_space=False)
    (_, refused_err), (_, ran_out_err) = refused.communicate(timeout=300), ran_out.communicate(timeout=300)
    assert refused.returncode == 1, refused_err
    last = refused_err.strip().splitlines()[-1]
    assert last.startswith(f"error: no space left on device {small_disk} for the export to {big} (400 videos") \
        and last.endswith("nothing was written"), last
    assert not big.exists() or not any(big.iterdir())
    assert ran_out.returncode == 1, ran_out_err[-2000:]
    last = ran_out_err.strip().splitlines()[-1]
    assert last.startswith(f"error: no space left on device {small_disk} writing {midway / 'visual_feature.h5'}"), last
    assert "no visual_feature.h5 was written" in last and not _temporary(midway)
