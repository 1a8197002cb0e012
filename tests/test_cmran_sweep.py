"""The ablation sweep runs trainings, skips finished ones and tabulates mean and spread."""

import json

import pytest

from examples.cmran import sweep


@pytest.mark.slow
def test_tiny_sweep_runs_skips_and_summarizes(tmp_path, capsys):
    args = ["--seeds", "0,1", "--epochs", "1", "--only", "full", "--out", str(tmp_path),
            "--", "--subset", "8", "--max-steps", "1", "--batch-size", "4", "--itr-layers", "1"]
    assert sweep.main(args) == 0
    runs = tmp_path / "supervised" / "full"
    results = [json.loads((runs / f"seed{s}" / "result.json").read_text())["test_acc"] for s in (0, 1)]
    summary = json.loads((tmp_path / "supervised" / "summary.json").read_text())
    assert summary == {"full": [100 * r for r in results]}
    table = (tmp_path / "supervised" / "summary.md").read_text()
    assert "| full | (defaults) |" in table and "| 2 | 77.40 |" in table
    # a second call finds result.json and trains nothing
    (runs / "seed0" / "train.log").unlink()
    assert sweep.main(args) == 0
    assert not (runs / "seed0" / "train.log").exists()


def test_sweep_refuses_unknown_family():
    with pytest.raises(SystemExit):
        sweep.main(["--only", "full,bogus"])
