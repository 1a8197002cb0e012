"""A run's data (examples/ave/data_identity.py, issue 22 items 4 and 5): a data file truncated in place or
renamed over while a run uses it stops the run with the reason, before the epoch that read it is saved and
before the test, keeping its checkpoints; ``--resume`` on other data than the run trained on is refused
unless ``--allow-new-data``; a checkpoint written before the record existed resumes with a note.
"""

from __future__ import annotations

import os
import shutil

import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

import examples.ave.trainer as trainer_module
from examples.ave.checkpoint import load_checkpoint, save_checkpoint
from examples.ave.export import export_synthetic

pytestmark = pytest.mark.xdist_group("cmran_train")

TINY = ["--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("ave")
    for n in (12, 24):
        export_synthetic(root / f"ds{n}", num_videos=n, progress=False)
    return root


@pytest.fixture
def data(exports, tmp_path):
    dst = tmp_path / "ds12"
    shutil.copytree(exports / "ds12", dst)
    return dst


def _after(monkeypatch, method: str, epoch: int, action) -> None:
    """Run ``action`` after ``Trainer.method`` (score_and_select: validation; save) of epoch ``epoch``."""
    real = getattr(trainer_module.Trainer, method)

    def then(self, e, *args, **kwargs):
        result = real(self, e, *args, **kwargs)
        if e == epoch:
            action()
        return result

    monkeypatch.setattr(trainer_module.Trainer, method, then)


def test_a_data_file_truncated_in_place_stops_the_run_before_the_epoch_is_saved(capsys, data, tmp_path, monkeypatch):
    visual = data / "visual_feature.h5"
    size = visual.stat().st_size
    _after(monkeypatch, "score_and_select", 2, lambda: os.truncate(visual, size // 2))
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", data, *TINY, "--epochs", "3", "--out", out)
    assert code == 1, err
    error, stopped = err.strip().splitlines()[-2:]
    assert error == (f"error: {visual}: the data changed while the run was using it (its size went from {size} to "
                     f"{size // 2} bytes); the run stopped after epoch 2's training and validation, before it was saved")
    assert stopped.startswith(f"stopped: {out / 'last.pt'} holds epoch 1 of 3") and stopped.endswith("--resume")
    assert load_checkpoint(out / "last.pt")["epoch"] == 1 and not (out / "result.json").exists()


def test_a_data_file_renamed_over_before_the_test_stops_the_run(capsys, data, exports, tmp_path, monkeypatch):
    other = tmp_path / "other.h5"
    shutil.copy(exports / "ds24" / "visual_feature.h5", other)
    _after(monkeypatch, "save", 2, lambda: os.replace(other, data / "visual_feature.h5"))
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", data, *TINY, "--epochs", "2", "--out", out)
    assert code == 1 and "IndexError" not in err, err
    error = err.strip().splitlines()[-2]
    assert error == (f"error: {data / 'visual_feature.h5'}: the data changed while the run was using it (another "
                     "file was put in its place); the run stopped before the test")
    assert load_checkpoint(out / "last.pt")["epoch"] == 2 and not (out / "result.json").exists()


def test_resuming_on_other_data_is_refused_unless_allowed(capsys, exports, tmp_path):
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", exports / "ds12", *TINY, "--epochs", "1", "--out", out)
    assert code == 0, err
    before = (out / "last.pt").read_bytes()
    resume = ["train", "--data", exports / "ds24", *TINY, "--epochs", "2", "--out", out, "--resume"]
    code, _, err = run(capsys, *resume)
    assert code == 1 and "the run trained on other data than --data" in err and "--allow-new-data" in err, err
    assert "visual_feature.h5: 12" in err and (out / "last.pt").read_bytes() == before
    code, _, err = run(capsys, *resume, "--allow-new-data")
    assert code == 0 and "note: --allow-new-data: resuming on other data" in err, err
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["best_epoch"] == 2  # best.pt chosen among the epochs on the new data
    # a checkpoint written before the record existed: resumes as before, with a note
    del ckpt["data_identity"]
    ckpt["model_config"], ckpt["train_config"] = ckpt["model_config"].to_dict(), ckpt["train_config"].to_dict()
    save_checkpoint(out / "last.pt", ckpt)
    code, _, err = run(capsys, "train", "--data", exports / "ds12", *TINY, "--epochs", "3", "--out", out, "--resume")
    assert code == 0 and "records no data identity" in err, err
    code, _, err = run(capsys, "train", "--data", exports / "ds12", *TINY, "--epochs", "1", "--out", tmp_path / "x",
                       "--allow-new-data")
    assert code == 2 and "--allow-new-data applies to --resume only" in err
