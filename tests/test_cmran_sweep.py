"""The ablation sweep runs trainings, skips finished ones and tabulates mean and spread."""

import json

import pytest

from examples.ave import registry
from examples.cmran.__main__ import main as cli

ABLATIONS = registry.family("cmran").sweep


def sweep(args: list[str]) -> int:
    return cli(["sweep", *args])


@pytest.mark.slow
def test_tiny_sweep_runs_skips_and_summarizes(tmp_path, capsys):
    args = ["--seeds", "0,1", "--epochs", "1", "--only", "full", "--out", str(tmp_path),
            "--", "--subset", "8", "--max-steps", "1", "--batch-size", "4", "--itr-layers", "1"]
    assert sweep(args) == 0
    runs = tmp_path / "supervised" / "full"
    results = [json.loads((runs / f"seed{s}" / "result.json").read_text())["test_acc"] for s in (0, 1)]
    summary = json.loads((tmp_path / "supervised" / "summary.json").read_text())
    assert summary == {"full": [100 * r for r in results]}
    table = (tmp_path / "supervised" / "summary.md").read_text()
    assert "| full | (defaults) |" in table and "| 2 | 77.40 |" in table
    # a second call finds result.json and trains nothing
    (runs / "seed0" / "train.log").unlink()
    assert sweep(args) == 0
    assert not (runs / "seed0" / "train.log").exists()


def test_sweep_refuses_unknown_family(capsys):
    with pytest.raises(SystemExit):
        sweep(["--only", "full,bogus"])
    assert "unknown families ['bogus']" in capsys.readouterr().err


def test_report_tabulates_finished_runs_without_training(tmp_path):
    accs = {("full", 0): 0.70, ("full", 2): 0.74, ("no_cmra", 1): 0.66}
    for (name, seed), acc in accs.items():
        run = tmp_path / "weak" / name / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps({"test_acc": acc}))
    args = ["--setting", "weak", "--report", "--only", "full,no_cmra,agva", "--epochs", "4", "--out", str(tmp_path)]
    assert sweep(args) == 0
    assert not (tmp_path / "weak" / "agva").exists()  # nothing was trained
    summary = json.loads((tmp_path / "weak" / "summary.json").read_text())
    assert summary == {"full": [70.0, 74.0], "no_cmra": [66.0], "agva": []}
    table = (tmp_path / "weak" / "summary.md").read_text()
    assert "| full | (defaults) | 72.00 | 2.83 | 2 | 72.90 |" in table
    assert "| no_cmra | --cmra none | 66.00 | nan | 1 | 72.03 |" in table and "agva" not in table


@pytest.mark.parametrize("setting", ["supervised", "weak"])
def test_every_family_is_a_valid_training_configuration(tmp_path, setting):
    from examples.ave.cli import build_parser
    from examples.ave.train import configs_from_args

    parser = build_parser()
    built = set()
    for options, _ in ABLATIONS.values():
        model_cfg, _ = configs_from_args(parser.parse_args(["train", "--setting", setting, "--out", str(tmp_path), *options]))
        built.add(model_cfg)
    assert len(built) == len(ABLATIONS)  # no two families train the same model


def test_report_marks_unpublished_paper_numbers(tmp_path):
    run = tmp_path / "weak" / "itr_L0" / "seed0"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"test_acc": 0.5}))
    assert sweep(["--setting", "weak", "--report", "--only", "itr_L0", "--out", str(tmp_path)]) == 0
    assert "| itr_L0 | --itr-layers 0 | 50.00 | nan | 1 | n/a |" in (tmp_path / "weak" / "summary.md").read_text()
