"""Which segment labels a data directory's run uses (examples/ave/data/label_sources.py and the pipeline's
policy in examples/ave/datasets.py, issue 22 item 6): the choice is said in one line; a labels.h5 that
disagrees with Annotations.txt (supervised and weak), or a directory Annotations.txt with the wrong number
of rows, is refused unless ``--labels annotations`` or ``--labels file`` says which to use. The real
release's two known label errors are not a disagreement to refuse.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

from examples.ave.config import TrainConfig
from examples.ave.data import AVEDataError
from examples.ave.datasets import build_splits
from examples.cmran.config import CMRANConfig

pytestmark = pytest.mark.xdist_group("cmran_train")

N = 12
TINY = ["--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8", "--epochs", "1"]




def _splits(root: Path, setting: str = "supervised", labels: str = "auto"):
    cfg = TrainConfig(data=str(root), labels=labels).resolve(setting)
    return build_splits(CMRANConfig(setting=setting), cfg, ("val",))


def label_note(splits):
    from examples.ave.datasets import label_note

    return label_note(splits)


def _relabel_sample_0(root: Path, category: int) -> None:
    with h5py.File(root / "labels.h5", "r") as f:
        labels = f["avadataset"][()]
    labels[0] = np.eye(29, dtype=np.float32)[[category] * 10]
    (root / "labels.h5").unlink()
    with h5py.File(root / "labels.h5", "w") as f:
        f.create_dataset("avadataset", data=labels)


@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_a_disagreement_nobody_chose_is_refused(copy, setting):
    assert label_note(_splits(copy, setting)) == f"segment labels: {copy / 'Annotations.txt'} (labels.h5 agrees)"
    _relabel_sample_0(copy, 3)
    with pytest.raises(AVEDataError) as err:
        _splits(copy, setting)
    assert str(err.value) == (f"{copy / 'labels.h5'} and {copy / 'Annotations.txt'} disagree on 1 of {N} samples "
                              "(sample 0): pass --labels annotations to use the annotations, or --labels file to use "
                              "labels.h5")
    note = label_note(_splits(copy, setting, "annotations"))
    assert note == (f"segment labels: {copy / 'Annotations.txt'} (--labels annotations; labels.h5 disagrees on 1 of "
                    f"{N} samples (sample 0))")


def test_an_annotation_file_with_the_wrong_row_count_is_not_set_aside_silently(copy):
    lines = (copy / "Annotations.txt").read_text().splitlines()
    (copy / "Annotations.txt").write_text("\n".join(lines[:-1]) + "\n")  # header + N - 1 rows
    with pytest.raises(AVEDataError, match=rf"Annotations.txt: holds {N - 1} samples, but the features hold {N}: "
                                           r"it does not describe these videos; .* --labels file"):
        _splits(copy)
    assert label_note(_splits(copy, labels="file")) == f"segment labels: {copy / 'labels.h5'} (--labels file)"
    (copy / "Annotations.txt").unlink()  # no annotation file at all: labels.h5, said so
    assert label_note(_splits(copy)) == (f"segment labels: {copy / 'labels.h5'} ({copy} has no Annotations.txt; the "
                                         "shipped one is the 4143-video release's)")


def test_train_says_which_labels_it_uses_and_refuses_a_disagreement(capsys, copy, tmp_path):
    code, out, err = run(capsys, "train", "--data", copy, *TINY, "--out", tmp_path / "a")
    assert code == 0 and f"segment labels: {copy / 'Annotations.txt'} (labels.h5 agrees)" in out, err
    _relabel_sample_0(copy, 3)
    code, _, err = run(capsys, "train", "--data", copy, *TINY, "--out", tmp_path / "b")
    assert code == 1 and "disagree on 1 of 12 samples" in err and not (tmp_path / "b").exists()
    code, out, err = run(capsys, "train", "--data", copy, *TINY, "--labels", "file", "--out", tmp_path / "c")
    assert code == 0 and f"segment labels: {copy / 'labels.h5'} (--labels file; Annotations.txt disagrees" in out, err
    code, _, err = run(capsys, "train", *TINY, "--labels", "file", "--out", tmp_path / "d")
    assert code == 2 and "applies to a data directory only" in err


def test_the_real_releases_known_label_errors_are_not_refused(tmp_path):
    from examples.ave.data.label_sources import LabelChoice

    known = LabelChoice(tmp_path, 4143, "auto", "annotations", tmp_path / "Annotations.txt", 4143, True, (171, 2189))
    assert known.problem() is None
    assert known.note().endswith("(labels.h5 differs on 2 of 4143 samples (samples 171, 2189), the release's known "
                                 "label errors)")
    other = LabelChoice(tmp_path, 4143, "auto", "annotations", tmp_path / "Annotations.txt", 4143, True, (171, 2190))
    assert "disagree on 2 of 4143 samples" in other.problem()
