"""Non-finite values in the CMRAN example are errors, never results: NaN/inf features (named by file,
split and video, before anything is written or reported), non-finite model outputs in evaluation,
checkpoints holding non-finite weights, and strict JSON.

Axis legend: N samples, T=10 segments, 7x7 grid, C=512 channels, A=128.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)
from torch.utils.data import TensorDataset

from examples.ave.checkpoint import load_checkpoint, save_checkpoint, write_json, write_jsonl
from examples.ave.data import AVEDataError, build_datasets
from examples.ave.data.release import BLOCK, F32_MAX, first_non_finite
from examples.ave.evaluate import NonFiniteOutputError, evaluate_accuracy
from examples.cmran.__main__ import main as cli
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN

pytestmark = pytest.mark.xdist_group("cmran_train")

N = 12  # the export takes 12 videos: train 10, val 1, test 1 (and 1 background video)
RUN = ["--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8", "--epochs", "1"]
TINY = ["--data", "synthetic", "--subset", "8", *RUN]




@pytest.fixture(scope="module")
def release_checkpoint(release, tmp_path_factory):
    """best.pt of a tiny run on the clean release (its copies are poked afterwards)."""
    out = tmp_path_factory.mktemp("run") / "release"
    assert cli(["train", "--data", str(release), *RUN, "--out", str(out)]) == 0
    return out / "best.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "one"
    assert cli(["train", *TINY, "--out", str(out)]) == 0
    return out


def _order(root, split) -> np.ndarray:
    with h5py.File(root / f"{split}_order.h5", "r") as f:
        return f["order"][()]


def _poke(path, row, where, value) -> None:
    with h5py.File(path, "r+") as f:
        d = f["avadataset"]
        x = d[row]
        x[where] = value
        d[row] = x


# ---- features --------------------------------------------------------------------------------

@pytest.mark.parametrize("split, name, value", [
    ("train", "visual_feature.h5", np.nan),
    ("val", "audio_feature.h5", np.inf),
    ("test", "visual_feature.h5", -np.inf),
])
def test_a_non_finite_feature_stops_train_before_out_holds_files(capsys, copy, tmp_path, release_checkpoint, split,
                                                                 name, value):
    video = int(_order(copy, split)[-1])
    where = (3, 2) if name == "audio_feature.h5" else (3, 1, 4, 100)
    _poke(copy / name, video, where, value)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "train", "--data", copy, *RUN, "--out", out)
    assert code == 1
    assert str(copy / name) in err and f"video {video} " in err and f"{split} split" in err and str(value) in err
    assert f"{list(where)}" in err
    assert stdout == ""  # no number at all was reported
    assert not out.exists()
    # evaluate names it too, for the split it scores, and reports no accuracy
    if split != "train":
        code, stdout, err = run(capsys, "evaluate", "--checkpoint", release_checkpoint, "--split", split,
                                "--data", copy)
        assert code == 1 and f"video {video} " in err and "accuracy" not in stdout


def test_a_non_finite_background_video_is_named_in_the_weak_setting(capsys, copy, tmp_path):
    _poke(copy / "visual_feature_noisy.h5", 0, (0, 0, 0, 0), np.nan)
    build_datasets(copy, setting="supervised")  # the supervised setting does not read the file
    with pytest.raises(AVEDataError, match=r"visual_feature_noisy\.h5: video 0 \(item 10 of the train split\)"):
        build_datasets(copy, setting="weak")
    build_datasets(copy, setting="weak", splits=("val", "test"))  # only the splits asked for are read


def test_only_the_splits_asked_for_are_read(copy):
    video = int(_order(copy, "test")[0])
    _poke(copy / "visual_feature.h5", video, (0, 0, 0, 0), np.nan)
    assert set(build_datasets(copy, splits=("train", "val"))) == {"train", "val"}
    with pytest.raises(AVEDataError, match="test split"):
        build_datasets(copy, splits=("test",))
    with pytest.raises(ValueError, match="splits"):
        build_datasets(copy, splits="test")


def _reference_first_bad(array: np.ndarray, rows) -> tuple | None:
    """Plain reference: the first row (ascending) with a value that is not finite in float32."""
    for r in sorted(set(int(i) for i in rows)):
        with np.errstate(over="ignore"):
            bad = ~np.isfinite(array[r].astype(np.float32))
        if bad.any():
            where = np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), array.shape[1:])
            return r, tuple(int(i) for i in where), int(bad.sum())
    return None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_non_finite_matches_a_plain_reference(tmp_path, dtype):
    rng = np.random.default_rng(0)
    n = 2 * BLOCK + 5  # blocks of BLOCK rows, and a partial one
    array = rng.standard_normal((n, 3, 5)).astype(dtype)
    bad_values = [np.nan, np.inf, -np.inf] + ([1e300, -3.5e38] if dtype == np.float64 else [])
    for k, (r, v) in enumerate(zip(rng.choice(n, size=len(bad_values) * 2, replace=False), bad_values * 2)):
        array[r, k % 3, (2 * k) % 5] = v
    if dtype == np.float64:
        array[1, 0, 0] = 3e38  # large, but a float32 still holds it
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("avadataset", data=array, chunks=(1, 3, 5))
    with h5py.File(path, "r") as f:
        d = f["avadataset"]
        for rows in ([0], [n - 1], list(range(n)), list(range(0, n, 3)), rng.choice(n, size=9, replace=False),
                     [5, 4, 3, 40, 41, 42, 43]):
            got = first_non_finite(d, rows)
            want = _reference_first_bad(array, rows)
            assert (got if got is None else (got[0], got[1], got[3])) == want, rows
            if got is not None:
                value = array[got[0]][got[1]]
                assert (np.isnan(got[2]) and np.isnan(value)) or got[2] == value
                assert not abs(got[2]) <= F32_MAX
        clean = [r for r in range(n) if _reference_first_bad(array, [r]) is None]
        assert first_non_finite(d, clean) is None


# ---- model outputs ---------------------------------------------------------------------------

def _tiny_dataset(n: int, nan_at: int | None = None) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    visual = torch.rand(n, 10, 7, 7, 512, generator=g)
    audio = torch.rand(n, 10, 128, generator=g)
    if nan_at is not None:
        audio[nan_at, 4, 7] = float("nan")
    seg = torch.randint(0, 29, (n, 10), generator=g)
    return TensorDataset(visual, audio, seg, seg[:, 0])


@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_a_non_finite_output_in_evaluation_is_an_error_not_an_accuracy(setting):
    torch.manual_seed(0)
    model = CMRAN(CMRANConfig(setting=setting, itr_layers=1, ffn_dim=64))
    cpu = torch.device("cpu")
    acc, n = evaluate_accuracy(model, _tiny_dataset(7), device=cpu, batch_size=3)
    assert 0 <= acc <= 1 and n == 70
    with pytest.raises(NonFiniteOutputError, match=r"on 1 of 7 videos \(first: item 5 of the split\)"):
        evaluate_accuracy(model, _tiny_dataset(7, nan_at=5), device=cpu, batch_size=3)
    with torch.no_grad():
        next(model.parameters()).fill_(float("inf"))
    with pytest.raises(NonFiniteOutputError, match="on 7 of 7 videos"):
        evaluate_accuracy(model, _tiny_dataset(7), device=cpu, batch_size=3)
    with pytest.raises(ValueError, match="holds no video"):
        evaluate_accuracy(CMRAN(CMRANConfig(setting=setting)), _tiny_dataset(0), device=cpu)


def test_train_stops_on_a_non_finite_validation_output(capsys, tmp_path, monkeypatch):
    """The val score of an epoch is an error, not an accuracy, when the model's output is not finite."""
    forward = CMRAN.forward

    def nan_in_eval(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        return output if self.training else type(output)(*(x * float("nan") for x in output))

    monkeypatch.setattr(CMRAN, "forward", nan_in_eval)
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", *TINY, "--out", out)
    assert code == 1 and "error: the model's output is NaN or infinite on 8 of 8 videos" in err
    assert "val acc" not in stdout and "test accuracy" not in stdout
    assert not (out / "last.pt").exists() and not (out / "result.json").exists()


# ---- checkpoints -----------------------------------------------------------------------------

def test_a_checkpoint_with_non_finite_weights_is_refused(capsys, tmp_path, trained):
    ckpt = load_checkpoint(trained / "last.pt")
    key = next(k for k, v in ckpt["model"].items() if v.is_floating_point() and v.numel() > 3)
    ckpt["model"][key].view(-1)[3] = float("nan")
    ckpt["model_config"] = ckpt["model_config"].to_dict()
    ckpt["train_config"] = ckpt["train_config"].to_dict()
    bad = tmp_path / "bad" / "last.pt"
    save_checkpoint(bad, ckpt)
    for argv in (["evaluate", "--checkpoint", bad],
                 ["visualize", "--checkpoint", bad, "--out", tmp_path / "vis"],
                 ["train", *TINY, "--epochs", "2", "--out", bad.parent, "--resume"]):
        code, stdout, err = run(capsys, *argv)
        assert code == 1 and "non-finite weights" in err and key in err, (argv[0], err)
        assert "accuracy" not in stdout
    assert not (tmp_path / "vis").exists()
    assert not (bad.parent / "config.json").exists()


def test_a_checkpoint_with_non_finite_optimizer_state_is_not_resumed(capsys, tmp_path, trained):
    ckpt = load_checkpoint(trained / "last.pt")
    ckpt["optimizer"]["state"][0]["exp_avg_sq"].view(-1)[0] = float("inf")
    ckpt["model_config"] = ckpt["model_config"].to_dict()
    ckpt["train_config"] = ckpt["train_config"].to_dict()
    save_checkpoint(tmp_path / "last.pt", ckpt)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "2", "--out", tmp_path, "--resume")
    assert code == 1 and "non-finite optimizer state" in err and "0.exp_avg_sq" in err


# ---- JSON ------------------------------------------------------------------------------------

def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_files_are_strict(tmp_path, trained):
    for name in ("config.json", "result.json"):
        _strict((trained / name).read_text())
    for line in (trained / "metrics.jsonl").read_text().splitlines():
        _strict(line)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            write_json(tmp_path / "r.json", {"test_acc": bad})
        with pytest.raises(ValueError):
            write_jsonl(tmp_path / "m.jsonl", [{"val_acc": bad}])
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "m.jsonl").exists()
