"""A run folder is never lost to a bad value or a failed restart (examples/ave/run_folder.py, issue 22
item 1): every value is validated before the folder is touched (an infinite --grad-clip used to delete a
finished run, then fail writing config.json), and ``--overwrite`` removes nothing until the new run has an
epoch to put in the earlier run's place.
"""

from __future__ import annotations

import json

import pytest
import torch
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

from examples.ave.checkpoint import RUN_FILES, load_checkpoint
from examples.cmran.__main__ import main as cli

pytestmark = pytest.mark.xdist_group("cmran_train")

TINY = ["--data", "synthetic", "--subset", "8", "--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "finished"
    assert cli(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


def _files(out):
    return {name: (out / name).read_bytes() for name in RUN_FILES}


@pytest.mark.parametrize("value", ["inf", "1e309", "nan"])
def test_a_non_finite_value_is_refused_before_the_folder_is_touched(capsys, tmp_path, finished, value):
    before = _files(finished)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--grad-clip", value, "--out", finished, "--overwrite")
    assert code == 2 and "grad_clip must be a finite number >= 0" in err and "Traceback" not in err, err
    assert _files(finished) == before
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--grad-clip", value, "--out", tmp_path / "fresh")
    assert code == 2 and not (tmp_path / "fresh").exists()


def test_overwrite_keeps_the_earlier_run_until_its_first_epoch_is_saved(capsys, tmp_path, finished, monkeypatch):
    before = _files(finished)

    def interrupted(obj, f, *args, **kwargs):  # halfway through the new run's first checkpoint
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "2", "--seed", "3", "--out", finished, "--overwrite")
    assert code == 130 and f"{finished} still holds the earlier run, untouched; start again with: " in err, err
    assert _files(finished) == before and not [p for p in finished.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    code, _, err = run(capsys, "train", *TINY, "--epochs", "2", "--seed", "3", "--out", finished, "--overwrite")
    assert code == 0, err
    assert load_checkpoint(finished / "last.pt")["train_config"].seed == 3
    assert json.loads((finished / "config.json").read_text())["train"]["seed"] == 3
    assert [json.loads(line)["epoch"] for line in (finished / "metrics.jsonl").read_text().splitlines()] == [1, 2]
