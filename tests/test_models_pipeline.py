"""AVEL, AVEL-DMRN and PSP on the CMRAN pipeline (``--model``): each reference's recipe as the default,
option validation, tiny train/evaluate/predict/visualize runs per model and setting, the recipe options
(step-wise lr, fixed batch order, model selection), resume, and the sweep.

Runs go through ``python -m examples.cmran`` 's ``main`` in-process, on the first 8 videos of each
split, batch 4, 2 steps per epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

from examples.ave import registry
from examples.ave.checkpoint import load_checkpoint
from examples.ave.checks import ConfigError
from examples.ave.cli import build_parser
from examples.ave.config import TrainConfig
from examples.ave.registry import build_model, config_from_dict
from examples.ave.train import configs_from_args
from examples.avel.config import AVELConfig
from examples.cmran.__main__ import main as cli
from examples.psp.config import PSPConfig

TINY = ["--data", "synthetic", "--subset", "8", "--batch-size", "4", "--max-steps", "2", "--eval-batch-size", "8"]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- recipes ----

# (model, setting) -> epochs, batch, lr, milestones, factor, unit, clip: the reference scripts' recipes
REFERENCE_RECIPES = {
    ("avel", "supervised"): (300, 64, 1e-3, (14999,), 0.1, "step", 0.0),
    ("avel", "weak"): (250, 64, 1e-3, (14999,), 0.1, "step", 0.0),
    ("avel-dmrn", "supervised"): (300, 64, 1e-3, (14999,), 0.1, "step", 0.0),
    ("psp", "supervised"): (300, 128, 1e-3, (60, 120), 0.8, "epoch", 0.0),
    ("psp", "weak"): (300, 128, 1e-3, (80, 160), 0.8, "epoch", 0.0),
    ("cmran", "supervised"): (200, 32, 5e-4, (10, 20, 30), 0.5, "epoch", 0.1),
    ("cmran", "weak"): (200, 32, 5e-4, (5, 20, 40), 0.5, "epoch", 0.5),
}


@pytest.mark.parametrize("model, setting", list(REFERENCE_RECIPES))
def test_recipe_defaults_are_the_references(tmp_path, model, setting):
    args = build_parser().parse_args(["train", "--model", model, "--setting", setting, "--out", str(tmp_path / "r")])
    model_cfg, cfg = configs_from_args(args)
    got = (cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_milestones, cfg.lr_gamma, cfg.lr_unit, cfg.grad_clip)
    assert got == REFERENCE_RECIPES[(model, setting)]
    assert cfg.shuffle and cfg.select_on == "val"  # the sound defaults, not the scripts' practice
    assert cfg == TrainConfig(out=str(tmp_path / "r")).resolve(setting, model)
    assert config_from_dict(model_cfg.to_dict()) == model_cfg


def test_step_milestone_reproduces_avel_decay_at_update_15000():
    """AVEL steps StepLR(15000) before each update: update n uses 1e-3 * 0.1^floor(n / 15000). Here the
    scheduler steps after each update, so update n sees the milestones below n."""
    cfg = TrainConfig().resolve("supervised", "avel")
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.lr_milestones), gamma=cfg.lr_gamma)
    used = {}
    for n in range(1, 15002):
        used[n] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    assert all(abs(used[n] - 1e-3 * 0.1 ** (n // 15000)) < 1e-12 for n in (1, 14999, 15000, 15001))


def test_model_configs_fill_and_refuse_options():
    assert AVELConfig().agva_audio_along_cells is True and AVELConfig().mil_pooling is None
    assert AVELConfig(setting="weak").mil_pooling == "max"
    assert AVELConfig(model="avel-dmrn").dmrn_blocks == 1 and AVELConfig(model="avel-dmrn").dmrn_swap_residuals
    assert PSPConfig().threshold == 0.099 and PSPConfig(setting="weak").threshold == 0.095
    assert PSPConfig().avps_weight == 100.0 and PSPConfig().avps_target == "clean"
    bad = [
        (lambda: AVELConfig(model="avel-dmrn", setting="weak"), "no weak setting"),
        (lambda: AVELConfig(model="avel-dmrn", variant="a"), "variant='a' applies to model='avel' only"),
        (lambda: AVELConfig(variant="a", agva_audio_along_cells=False), "agva_audio_along_cells=False has no effect"),
        (lambda: AVELConfig(mil_pooling="max"), "mil_pooling='max' has no effect"),
        (lambda: AVELConfig(setting="weak", mil_pooling="sum"), "mil_pooling must be one of"),
        (lambda: AVELConfig(dmrn_blocks=2), "dmrn_blocks=2 has no effect"),
        (lambda: AVELConfig(model="avel-dmrn", dmrn_blocks=0), r"dmrn_blocks must be an integer in \[1, 16\]"),
        (lambda: AVELConfig(variant="av_att_v2"), "variant must be one of"),
        (lambda: AVELConfig(loss="mse"), "loss must be one of"),
        (lambda: PSPConfig(threshold=1.5), r"threshold must be a probability in \[0, 1\)"),
        (lambda: PSPConfig(dropout=-0.1), "dropout must be a probability"),
        (lambda: PSPConfig(setting="weak", avps_weight=1.0), "avps_weight=1.0 has no effect"),
        (lambda: PSPConfig(setting="weak", avps_target="stale"), "avps_target='stale' has no effect"),
        (lambda: PSPConfig(avps_weight=-1), "avps_weight must be a finite positive number"),
        (lambda: PSPConfig(avps_weight=0, avps_target="stale"), "no effect with avps_weight=0"),
        (lambda: PSPConfig(avps_target="old"), "avps_target must be one of"),
        (lambda: TrainConfig(lr_unit="batch").resolve("supervised", "avel"), "lr_unit must be one of"),
        (lambda: TrainConfig(lr_unit="epoch").resolve("supervised", "avel"), "give lr_milestones"),
        (lambda: TrainConfig(select_on="train").resolve("supervised", "psp"), "select_on must be one of"),
        (lambda: TrainConfig(shuffle="no").resolve("supervised", "psp"), "shuffle must be a boolean"),
        (lambda: TrainConfig().resolve("weak", "avel-dmrn"), "has no 'weak' recipe"),
        (lambda: config_from_dict({"model": "tsn"}), "names the model 'tsn'"),
        (lambda: config_from_dict({"model": "avel", "heads": 2}), r"unknown fields \['heads'\]"),
    ]
    for build, match in bad:
        with pytest.raises(ConfigError, match=match):
            build()


@pytest.mark.parametrize("argv, match", [
    (["--model", "avel", "--cmra", "none"], "--cmra applies to --model cmran only, not --model avel"),
    (["--model", "psp", "--backend", "sdpa"], "--backend applies to --model cmran only"),
    (["--model", "psp", "--arch", "audio_only"], "--arch applies to --model cmran only"),
    (["--avel-variant", "a"], "--avel-variant applies to --model avel/avel-dmrn only, not --model cmran"),
    (["--model", "psp", "--mil-pooling", "mean"], "--mil-pooling applies to --model avel/avel-dmrn only"),
    (["--model", "avel", "--avps-weight", "1"], "--avps-weight applies to --model psp only"),
    (["--model", "avel", "--dropout", "0.2"], "AVEL has no dropout"),
    (["--model", "avel-dmrn", "--setting", "weak"], "no weak setting"),
    (["--model", "avel", "--agva-paper", "--avel-variant", "v"], "agva_audio_along_cells=False has no effect"),
    (["--model", "psp", "--setting", "weak", "--avps-target", "stale"], "avps_target='stale' has no effect"),
    (["--model", "psp", "--psp-threshold", "1"], "threshold must be a probability"),
    (["--model", "avel", "--lr-unit", "batch"], "invalid choice"),
    (["--model", "psp", "--select-on", "train"], "invalid choice"),
])
def test_bad_options_are_refused_before_any_work(capsys, tmp_path, argv, match):
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--out", tmp_path / "run", *argv)
    assert code == 2 and match in err.replace("\n", " ")
    assert not (tmp_path / "run").exists()


# ---- tiny runs ----

@pytest.mark.parametrize("model, setting, extra", [
    ("avel", "supervised", []),
    ("avel", "weak", []),
    ("avel-dmrn", "supervised", []),
    ("psp", "supervised", ["--avps-target", "stale"]),
    ("psp", "weak", []),
    ("avel", "weak", ["--avel-variant", "a", "--mil-pooling", "mean", "--avel-loss", "cross_entropy"]),
    ("avel", "supervised", ["--avel-variant", "av", "--avel-loss", "cross_entropy"]),
], ids=["avel", "avel-weak", "avel-dmrn", "psp-stale", "psp-weak", "avel-a-weak", "avel-av"])
def test_tiny_run_trains_evaluates_predicts_and_visualizes(capsys, tmp_path, model, setting, extra):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", *TINY, "--model", model, "--setting", setting, "--epochs", "1",
                            "--out", out, *extra)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["model"] == model and result["setting"] == setting and 0 <= result["test_acc"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["model"] == model and config["train"]["batch_size"] == 4
    ckpt = load_checkpoint(out / "best.pt")
    assert type(ckpt["model_config"]).__name__ == ("PSPConfig" if model == "psp" else "AVELConfig")
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())

    code, stdout, err = run(capsys, "evaluate", "--checkpoint", out / "best.pt", "--json", "--model", model)
    assert code == 0, err
    assert json.loads(stdout)["accuracy"] == pytest.approx(result["test_acc"])
    code, stdout, err = run(capsys, "predict", "--checkpoint", out / "best.pt", "--out", out / "events.jsonl")
    assert code == 0, err
    events = records(out / "events.jsonl")
    assert len(events) == 8 and all(0 < e["relevance"] <= 1 for r in events for e in r["events"])
    code, stdout, err = run(capsys, "visualize", "--checkpoint", out / "best.pt", "--out", out / "vis",
                            "--num-videos", "1")
    assert code == 0, err
    pngs = sorted(p.name for p in (out / "vis").glob("*.png")) if (out / "vis").exists() else []
    has_agva = "--avel-variant" not in extra or extra[extra.index("--avel-variant") + 1] in ("av_att", "v_att")
    assert pngs == (["00_agva.png", "00_psp.png"] if model == "psp" else ["00_agva.png"] if has_agva else [])


def test_predicted_segments_follow_the_argmax_rule(tmp_path, capsys):
    """predict's events are the runs of the model's argmax labels (background dropped)."""
    out = tmp_path / "run"
    assert run(capsys, "train", *TINY, "--model", "psp", "--epochs", "1", "--out", out)[0] == 0
    assert run(capsys, "predict", "--checkpoint", out / "best.pt", "--out", out / "ev.jsonl")[0] == 0
    from examples.ave.datasets import build_splits
    from examples.ave.evaluate import load_trained_model
    from examples.ave.predict import category_names

    model, ckpt = load_trained_model(str(out / "best.pt"), torch.device("cpu"))
    test = build_splits(model.config, ckpt["train_config"], ("test",))["test"]
    visual = torch.stack([test[i][0] for i in range(8)])
    audio = torch.stack([test[i][1] for i in range(8)])
    with torch.no_grad():
        labels = model(visual, audio).segment_logits.argmax(-1)
    names = category_names(test)
    n_events = 0
    for r, row in zip(records(out / "ev.jsonl"), labels.tolist()):
        covered = {t: e for e in r["events"] for t in range(e["start"], e["end"])}
        assert [t for t in range(10) if row[t] != 28] == sorted(covered)
        assert all(covered[t]["category"] == names[row[t]] for t in covered)
        n_events += len(r["events"])
    assert n_events > 0 and (labels == 28).any()  # not vacuous: both events and background were predicted


def test_step_lr_and_fixed_order(capsys, tmp_path):
    """--lr-unit step: the lr drops after the milestone's update; --no-shuffle: the same batches every epoch."""
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", *TINY, "--model", "avel", "--epochs", "2", "--lr-milestones", "1",
                       "--no-shuffle", "--out", out, "--debug-grads-out", tmp_path / "grads.pt")
    assert code == 0, err
    assert [r["lr"] for r in records(out / "metrics.jsonl")] == pytest.approx([1e-3, 1e-4])
    steps = torch.load(tmp_path / "grads.pt", weights_only=True)
    order = [s["indices"][0] for s in steps]
    assert order == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7]]
    shuffled = tmp_path / "shuffled"
    assert run(capsys, "train", *TINY, "--model", "avel", "--epochs", "2", "--out", shuffled,
               "--debug-grads-out", tmp_path / "g2.pt")[0] == 0
    order = [s["indices"][0] for s in torch.load(tmp_path / "g2.pt", weights_only=True)]
    assert order[:2] != order[2:]


@pytest.mark.parametrize("select_on", ["test", "last"])
def test_model_selection_options(capsys, tmp_path, select_on):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", *TINY, "--model", "psp", "--setting", "weak", "--epochs", "3",
                          "--select-on", select_on, "--out", out)
    assert code == 0
    hist = records(out / "metrics.jsonl")
    result = json.loads((out / "result.json").read_text())
    if select_on == "last":
        assert result["best_epoch"] == 3 and "test_acc" not in hist[0]
    else:  # the reference's >= on the test accuracy of every epoch
        best = max(range(3), key=lambda i: (hist[i]["test_acc"], i))
        assert result["best_epoch"] == best + 1 and result["test_acc"] == pytest.approx(hist[best]["test_acc"])
        assert "picked on TEST" in stdout
    assert result["selected_on"] == select_on
    code, stdout, _ = run(capsys, "train", *TINY, "--model", "psp", "--setting", "weak", "--epochs", "4",
                          "--select-on", select_on, "--out", out, "--resume")
    assert code == 0
    best = result["best_epoch"]
    score = 100 * hist[best - 1]["test_acc" if select_on == "test" else "val_acc"]
    assert f"(best {select_on}{', val' if select_on == 'last' else ''} {score:.2f}% at epoch {best})" in stdout


def _straight_and_resumed(capsys, tmp_path, opts, *, epochs):
    """The last.pt of ``epochs`` epochs in one run and of 1 epoch resumed to ``epochs``; their weights equal."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(capsys, "train", *opts, "--epochs", str(epochs), "--out", a)[0] == 0
    assert run(capsys, "train", *opts, "--epochs", "1", "--out", b)[0] == 0
    assert run(capsys, "train", *opts, "--epochs", str(epochs), "--out", b, "--resume")[0] == 0
    sa, sb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    return sa, sb


def test_resume_continues_exactly(capsys, tmp_path):
    """avel with the step-wise schedule: 1 epoch + resume to 2 equals 2 epochs in one go."""
    sa, sb = _straight_and_resumed(capsys, tmp_path, [*TINY, "--model", "avel", "--lr-milestones", "3"], epochs=2)
    assert sb["scheduler"]["last_epoch"] == 4 and sb["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_resume_and_readers_refuse_another_model(capsys, tmp_path):
    out = tmp_path / "run"
    assert run(capsys, "train", *TINY, "--model", "avel", "--epochs", "1", "--out", out)[0] == 0
    code, _, err = run(capsys, "train", *TINY, "--model", "avel-dmrn", "--epochs", "2", "--out", out, "--resume")
    assert code == 1 and "model config differs" in err and "avel-dmrn" in err
    for argv in (["evaluate"], ["predict", "--out", tmp_path / "e.jsonl"], ["visualize", "--out", tmp_path / "vis"]):
        code, _, err = run(capsys, *argv, "--checkpoint", out / "best.pt", "--model", "psp")
        assert code == 2 and "--model psp, but" in err and "holds a run of --model avel" in err


def test_old_cmran_train_configs_read_as_epoch_milestones():
    d = TrainConfig().resolve("supervised").to_dict()
    del d["lr_unit"], d["shuffle"], d["select_on"]
    cfg = TrainConfig.from_dict(d)
    assert cfg.lr_unit == "epoch" and cfg.shuffle and cfg.select_on == "val"


def test_every_model_has_its_reference_parameter_count():
    counts = {AVELConfig(): 1_335_246, AVELConfig(setting="weak"): 1_335_246,
              AVELConfig(model="avel-dmrn"): 1_571_150, PSPConfig(): 1_548_657, PSPConfig(setting="weak"): 1_253_902}
    for cfg, n in counts.items():
        assert sum(p.numel() for p in build_model(cfg).parameters()) == n


# ---- sweep ----

@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_sweep_model_families_are_valid_and_distinct(tmp_path, setting):
    parser = build_parser()
    built = set()
    entries = {name: entry for family in registry.families() if family.names != ("cmran",)
               for name, entry in family.sweep.items()}
    names = [n for n in entries if not (setting == "weak" and n == "avel_dmrn")]  # DMRN: supervised only
    for name in names:
        argv = ["train", "--setting", setting, "--out", str(tmp_path), *entries[name][0]]
        built.add(configs_from_args(parser.parse_args(argv))[0])
    assert len(built) == len(names)


def test_sweep_refuses_dmrn_weak(capsys):
    with pytest.raises(SystemExit):
        cli(["sweep", "--setting", "weak", "--only", "avel,avel_dmrn"])
    assert "avel_dmrn" in capsys.readouterr().err


def test_sweep_reports_the_new_models_beside_the_papers(tmp_path):
    for name, acc in (("avel", 0.6), ("psp", 0.7)):
        run_dir = tmp_path / "supervised" / name / "seed0"
        run_dir.mkdir(parents=True)
        (run_dir / "result.json").write_text(json.dumps({"test_acc": acc}))
    assert cli(["sweep", "--report", "--only", "avel,psp,avel_dmrn", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "supervised" / "summary.md").read_text()
    assert "| avel | --model avel | 60.00 | nan | 1 | 72.70 |" in table
    assert "| psp | --model psp | 70.00 | nan | 1 | 77.80 |" in table and "avel_dmrn" not in table


@pytest.mark.slow
def test_tiny_sweep_trains_a_new_model(tmp_path):
    args = ["--seeds", "0", "--epochs", "1", "--only", "avel_dmrn", "--out", str(tmp_path),
            "--", "--subset", "8", "--max-steps", "1", "--batch-size", "4"]
    assert cli(["sweep", *args]) == 0
    result = json.loads((tmp_path / "supervised" / "avel_dmrn" / "seed0" / "result.json").read_text())
    assert result["model"] == "avel-dmrn"


@pytest.mark.parametrize("cfg", [AVELConfig(setting="weak"), AVELConfig(model="avel-dmrn"), PSPConfig()],
                         ids=["avel-weak", "avel-dmrn", "psp"])
def test_models_compile_fullgraph(cfg):
    model = build_model(cfg).eval()
    visual, audio = torch.rand(2, 3, 7, 7, 512), torch.randn(2, 3, 128)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        for got, want in zip(compiled(visual, audio), model(visual, audio), strict=True):
            torch.testing.assert_close(got, want)


def test_bad_inputs_name_the_argument():
    model = build_model(PSPConfig())
    with pytest.raises(ValueError, match=r"visual must be a float tensor \(B, T, H, W, 512\)"):
        model(torch.rand(2, 3, 7, 7, 2048), torch.randn(2, 3, 128))
    with pytest.raises(ValueError, match=r"audio must be a float tensor \(B, T, 128\) with the B, T of visual \(2, 3\)"):
        build_model(AVELConfig())(torch.rand(2, 3, 49, 512), torch.randn(2, 4, 128))


@pytest.mark.parametrize("extra", [["--avps-target", "stale"], ["--setting", "weak"]])
def test_psp_resume_continues_exactly(capsys, tmp_path, extra):
    """PSP (dropout 0.1 on): 1 epoch + resume to 3 equals 3 epochs in one go, with the stale AVPS buffer too."""
    sa, sb = _straight_and_resumed(capsys, tmp_path, [*TINY, "--model", "psp", "--dropout", "0.3", *extra], epochs=3)
    if "stale" in extra:
        assert torch.equal(sa["model_extra"][0]["stale_target"], sb["model_extra"][0]["stale_target"])
