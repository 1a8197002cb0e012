"""The CMRAN training CLI on tiny synthetic runs: files, resume, NaN stop, bad input, evaluate, visualize.

Runs go through ``python -m examples.cmran`` 's ``main`` in-process (no interpreter start-up),
on the first 8 videos of each split, batch 4, 2 steps per epoch.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

from examples.ave.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from examples.cmran.__main__ import main as cli
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN

pytestmark = pytest.mark.xdist_group("cmran_train")  # one worker: the shared run is built once

TINY = ["--data", "synthetic", "--subset", "8", "--batch-size", "4", "--max-steps", "2", "--eval-batch-size", "8"]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """A 2-epoch supervised run, shared by several tests."""
    out = tmp_path_factory.mktemp("run") / "two"
    code = cli(["train", *TINY, "--epochs", "2", "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_a_complete_run(two_epochs):
    out = two_epochs
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "result.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp")), "temporary files left behind"
    recs = records(out / "metrics.jsonl")
    assert [r["epoch"] for r in recs] == [1, 2]
    for r in recs:
        assert set(r) == {"epoch", "train_loss", "val_acc", "lr", "seconds"}
        assert r["lr"] == 5e-4 and 0 <= r["val_acc"] <= 1 and r["train_loss"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["cmra"] == "cmra" and config["train"]["grad_clip"] == 0.1
    assert config["parameters"] == 9_509_150 and config["world_size"] == 1
    result = json.loads((out / "result.json").read_text())
    best = load_checkpoint(out / "best.pt")
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 2 and best["epoch"] == result["best_epoch"]
    assert best["best_val"] == max(r["val_acc"] for r in recs) == result["best_val_acc"]
    assert result["test_segments"] == 80 and 0 <= result["test_acc"] <= 1
    for key in ("optimizer", "scheduler", "scaler", "rng"):
        assert last[key] is not None
    assert set(last["rng"][0]) == {"python", "numpy", "torch", "cuda", "data"}


def test_train_prints_params_epochs_and_test_once(capsys, tmp_path):
    code, out, err = run(capsys, "train", *TINY, "--max-steps", "1", "--epochs", "2", "--out", tmp_path / "r")
    assert code == 0, err
    assert "9,509,150 parameters" in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("val acc" in line and "lr" in line for line in epoch_lines)
    assert out.count("test accuracy") == 1


def test_resume_continues_exactly(capsys, tmp_path, two_epochs):
    out = tmp_path / "resumed"
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--out", out)
    assert code == 0, err
    code, stdout, err = run(capsys, "train", *TINY, "--epochs", "2", "--out", out, "--resume")
    assert code == 0, err
    assert "resumed from" in stdout
    a, b = load_checkpoint(two_epochs / "last.pt"), load_checkpoint(out / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert torch.equal(a["optimizer"]["state"][0]["exp_avg_sq"], b["optimizer"]["state"][0]["exp_avg_sq"])

    def strip(recs):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in recs]

    assert strip(records(two_epochs / "metrics.jsonl")) == strip(records(out / "metrics.jsonl"))
    assert json.loads((two_epochs / "result.json").read_text())["test_acc"] == json.loads(
        (out / "result.json").read_text()
    )["test_acc"]


def test_resume_may_switch_the_adam_implementation(capsys, tmp_path):
    out = tmp_path / "switch"
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--out", out, "--adam-impl", "for")
    assert code == 0, err
    assert load_checkpoint(out / "last.pt")["optimizer"]["param_groups"][0]["fused"] is not True
    code, stdout, err = run(capsys, "train", *TINY, "--epochs", "2", "--out", out, "--resume")  # default: fused
    assert code == 0, err
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["optimizer"]["param_groups"][0]["fused"] is True
    assert ckpt["train_config"].adam_impl == "fused" and ckpt["epoch"] == 2


def test_weak_setting_with_bf16_autocast(capsys, tmp_path):
    out = tmp_path / "weak"
    code, stdout, err = run(capsys, "train", *TINY, "--setting", "weak", "--amp", "bf16", "--max-steps", "1",
                            "--epochs", "1", "--out", out)
    assert code == 0, err
    assert "9,509,407 parameters" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["interaction_heads"] == 2 and config["train"]["grad_clip"] == 0.5
    assert config["train"]["lr_milestones"] == [5, 20, 40]
    assert 0 <= json.loads((out / "result.json").read_text())["test_acc"] <= 1


def assert_stopped_keeping_epoch_1(code: int, err: str, out: Path, what: str, where: str) -> None:
    """Training stopped with status 1 at ``where``, naming ``what``; last.pt is epoch 1's, all finite."""
    assert code == 1
    assert f"non-finite {what}" in err and where in err and "last.pt (epoch 1)" in err
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(capsys, tmp_path):
    out = tmp_path / "nan"
    # 2 steps per epoch: step 3 is the first step of epoch 2
    code, stdout, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", out, "--debug-nan-at-step", "3")
    assert_stopped_keeping_epoch_1(code, err, out, "training loss", "epoch 2, step 1")
    assert [r["epoch"] for r in records(out / "metrics.jsonl")] == [1]
    assert not (out / "result.json").exists()
    # and the run can be resumed from there
    code, _, err = run(capsys, "train", *TINY, "--epochs", "2", "--out", out, "--resume")
    assert code == 0, err
    assert [r["epoch"] for r in records(out / "metrics.jsonl")] == [1, 2]
    # --overwrite starts afresh, but removes nothing before its first save (issue 22): a NaN at the first step
    # leaves no checkpoint of the new run and the earlier run's files as they were
    before = {n: (out / n).read_bytes() for n in ("last.pt", "best.pt", "result.json", "metrics.jsonl", "config.json")}
    code, _, err = run(capsys, "train", *TINY, "--epochs", "2", "--out", out, "--overwrite", "--debug-nan-at-step", "1")
    assert code == 1 and "no checkpoint was written yet" in err and "earlier run" in err
    assert {n: (out / n).read_bytes() for n in before} == before


def test_non_finite_gradient_stops_before_the_optimizer_step(capsys, tmp_path):
    out = tmp_path / "nan_grad"
    # a finite loss with a NaN gradient at step 4, the last step of epoch 2: without the gradient
    # check, Adam would make the weights NaN and epoch 2's last.pt would hold them
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", out, "--debug-nan-grad-at-step", "4")
    assert_stopped_keeping_epoch_1(code, err, out, "gradient norm", "epoch 2, step 2")


def test_resume_into_another_directory(capsys, tmp_path, two_epochs):
    out = tmp_path / "elsewhere"
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", out, "--resume", two_epochs / "last.pt")
    assert code == 0, err
    assert [r["epoch"] for r in records(out / "metrics.jsonl")] == [1, 2, 3]
    assert load_checkpoint(out / "best.pt")["epoch"] == json.loads((out / "result.json").read_text())["best_epoch"]
    assert load_checkpoint(two_epochs / "last.pt")["epoch"] == 2  # the source run is untouched


def test_resume_into_a_directory_holding_another_run_is_refused(capsys, tmp_path, monkeypatch, two_epochs):
    import examples.ave.train as train_module

    other = tmp_path / "other"
    other.mkdir()
    (other / "last.pt").write_bytes((two_epochs / "last.pt").read_bytes())
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("training started"))
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", other, "--resume", two_epochs / "last.pt")
    assert code == 2 and "already holds another run" in err and str(other) in err


def test_corrupt_or_mismatched_checkpoints_give_clear_errors(capsys, tmp_path, two_epochs):
    # truncated file
    bad = tmp_path / "bad" / "last.pt"
    bad.parent.mkdir()
    bad.write_bytes((two_epochs / "last.pt").read_bytes()[:5000])
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", bad.parent, "--resume")
    assert code == 1 and "could not be read" in err
    code, _, err = run(capsys, "evaluate", "--checkpoint", bad)
    assert code == 1 and "could not be read" in err
    # not a checkpoint of ours
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    code, _, err = run(capsys, "evaluate", "--checkpoint", tmp_path / "foreign.pt")
    assert code == 1 and "not a training checkpoint of this pipeline" in err
    # resuming with another architecture or recipe
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", two_epochs, "--resume", "--cmra", "self")
    assert code == 1 and "model config differs" in err and "cmra" in err
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", two_epochs, "--resume", "--lr", "1e-3")
    assert code == 1 and "training recipe differs" in err and "lr" in err
    # weights of one architecture into another
    ckpt = load_checkpoint(two_epochs / "best.pt")
    with pytest.raises(CheckpointError, match="does not fit this model's architecture"):
        load_model_state(CMRAN(CMRANConfig(features="resnet151")), ckpt["model"], "best.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model_state(CMRAN(CMRANConfig(itr_layers=1)), ckpt["model"], "best.pt")


BAD_CLI = [
    (["--epochs", "-1"], "epochs"),
    (["--epochs", "0"], "epochs"),
    (["--batch-size", "0"], "batch_size"),
    (["--lr", "0"], "lr"),
    (["--lr", "nan"], "lr"),
    (["--lr", "inf"], "finite positive"),
    (["--lr-gamma", "inf"], "lr_gamma"),
    (["--cmra", "bogus"], "invalid choice"),
    (["--visual-attention", "max"], "invalid choice"),
    (["--setting", "semi"], "invalid choice"),
    (["--arch", "audio_only", "--cmra", "self"], "does not apply"),
    (["--interaction-heads", "3"], "divisible"),
    (["--cmra", "self", "--itr-layers", "3"], "has no effect"),
    (["--itr-layers", "-2"], "itr_layers"),
    (["--dropout", "1.5"], "dropout"),
    (["--max-steps", "0"], "max_steps"),
    (["--num-workers", "-1"], "num_workers"),
    (["--lr-milestones", "10,x"], "lr-milestones"),
    (["--lr-milestones", "20,10"], "increasing"),
    (["--amp", "fp8"], "invalid choice"),
    (["--adam-impl", "fast"], "invalid choice"),
    (["--dropout-impl", "fast"], "invalid choice"),
    (["--data", "/nonexistent/ave"], "does not exist"),
    (["--difficulty", "-1"], "difficulty"),
    (["--device", "tpu"], "device"),
    (["--device", "cuda:x"], "device"),
    (["--arch", "audio_only", "--visual-dropout", "0.3"], "visual_dropout=0.3 has no effect"),
    (["--arch", "audio_only", "--no-visual-proj"], "visual_proj=False has no effect"),
    (["--no-visual-proj", "--visual-dropout", "0.1"], "visual_proj=False"),
    (["--resume"], "nothing to resume"),
    (["--resume", "/nonexistent.pt"], "no such checkpoint"),
]


@pytest.mark.parametrize("argv, match", BAD_CLI, ids=[" ".join(a) for a, _ in BAD_CLI])
def test_bad_cli_values_are_refused_before_any_work(capsys, tmp_path, monkeypatch, argv, match):
    import examples.ave.train as train_module

    def no_work(*args, **kwargs):
        raise AssertionError("training started despite a bad option")

    monkeypatch.setattr(train_module, "train", no_work)
    out = tmp_path / "out"
    base = ["--data", "synthetic", "--out", str(out)]
    code, _, err = run(capsys, "train", *base, *argv)
    assert code == 2
    assert match in err
    assert not out.exists()


def test_options_of_synthetic_data_are_refused_for_a_data_directory(capsys, tmp_path, monkeypatch):
    import examples.ave.train as train_module

    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("training started"))
    for flag, value in (("--data-seed", "3"), ("--difficulty", "0.5")):
        code, _, err = run(capsys, "train", "--data", tmp_path, "--out", tmp_path / "out", flag, value)
        assert code == 2 and f"{flag[2:].replace('-', '_')} applies only to data='synthetic'" in err


@pytest.mark.parametrize("argv, match", [
    (["--backend", "triton", "--dropout", "0"], "needs a CUDA device"),
    (["--tf32"], "CUDA devices only"),
])
def test_device_dependent_options_are_refused_before_any_work(capsys, tmp_path, monkeypatch, argv, match):
    import examples.ave.trainer as trainer_module

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(trainer_module, "build_splits", lambda *a, **k: pytest.fail("data loading started"))
    out = tmp_path / "out"
    code, _, err = run(capsys, "train", "--data", "synthetic", "--device", "cpu", "--out", out, *argv)
    assert code == 2 and match in err
    assert not out.exists()


def test_an_existing_run_is_not_overwritten_by_accident(capsys, monkeypatch, two_epochs):
    import examples.ave.train as train_module

    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("training started"))
    code, _, err = run(capsys, "train", "--data", "synthetic", "--out", two_epochs)
    assert code == 2 and "already holds a run" in err
    code, _, err = run(capsys, "train", "--data", "synthetic", "--out", two_epochs, "--resume", "--overwrite")
    assert code == 2 and "exclude each other" in err


def test_evaluate_reprints_the_result(capsys, two_epochs):
    code, out, err = run(capsys, "evaluate", "--checkpoint", two_epochs / "best.pt", "--json")
    assert code == 0, err
    got = json.loads(out)
    want = json.loads((two_epochs / "result.json").read_text())
    assert got["accuracy"] == pytest.approx(want["test_acc"], abs=1e-12) and got["segments"] == 80
    code, out, _ = run(capsys, "evaluate", "--checkpoint", two_epochs / "best.pt", "--split", "val")
    assert code == 0 and "val accuracy" in out
    best_val = load_checkpoint(two_epochs / "best.pt")["best_val"]
    assert f"{100 * best_val:.2f}%" in out


def test_evaluate_refuses_bad_options_before_loading(capsys, tmp_path, two_epochs):
    for argv, match in ((["--device", "foo"], "device must be"), (["--batch-size", "0"], "batch-size"),
                        (["--data", tmp_path / "missing"], "no such directory")):
        code, _, err = run(capsys, "evaluate", "--checkpoint", two_epochs / "best.pt", *argv)
        assert code == 2 and match in err


def _with_backend(src: Path, dst: Path, backend: str) -> Path:
    ckpt = load_checkpoint(src)
    ckpt["model_config"] = dataclasses.replace(ckpt["model_config"], backend=backend).to_dict()
    ckpt["train_config"] = ckpt["train_config"].to_dict()
    save_checkpoint(dst, ckpt)
    return dst


def test_evaluate_and_visualize_do_not_depend_on_the_training_backend(capsys, tmp_path, two_epochs):
    """A run trained with the sdpa backend (which returns no attention maps) still evaluates and plots."""
    ckpt = _with_backend(two_epochs / "best.pt", tmp_path / "sdpa.pt", "sdpa")
    assert load_checkpoint(ckpt)["model_config"].backend == "sdpa"
    code, out, err = run(capsys, "evaluate", "--checkpoint", ckpt, "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(json.loads((two_epochs / "result.json").read_text())["test_acc"])
    code, _, err = run(capsys, "visualize", "--checkpoint", ckpt, "--out", tmp_path / "vis", "--num-videos", "1")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "vis").glob("*.png")) == ["00_agsca.png", "00_cmra.png"]


def test_visualize_writes_the_figures(capsys, tmp_path, two_epochs):
    out = tmp_path / "vis"
    code, stdout, err = run(capsys, "visualize", "--checkpoint", two_epochs / "best.pt", "--out", out,
                            "--num-videos", "2")
    assert code == 0, err
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["00_agsca.png", "00_cmra.png", "01_agsca.png", "01_cmra.png"]
    for p in out.glob("*.png"):
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_subcommands_are_wired(capsys):
    for sub, flag in (("export-synthetic", "--num-videos"), ("train", "--itr-layers"), ("visualize", "--top-k")):
        code, out, _ = run(capsys, sub, "--help")
        assert code == 0 and flag in out
    assert "--debug-nan-at-step" not in run(capsys, "train", "--help")[1]


def test_only_rank_zero_reports_errors(capsys, monkeypatch, tmp_path):
    argv = ["train", "--data", "synthetic", "--epochs", "0", "--out", tmp_path / "out"]
    monkeypatch.setenv("RANK", "1")
    code, _, err = run(capsys, *argv)
    assert code == 2 and err == ""
    monkeypatch.setenv("RANK", "0")
    code, _, err = run(capsys, *argv)
    assert code == 2 and "epochs" in err
