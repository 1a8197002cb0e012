"""Errors under torchrun (examples/ave/cli.py, issue 22 item 12): whichever process ends first, the reason
reaches torchrun's error file, so its summary of the failed processes names it instead of a bare exit code
(``train --batch-size 3`` with 2 processes used to exit behind a wall of ``====`` with no reason shown when
the quiet process ended first).
"""

from __future__ import annotations

import json

import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

import examples.ave.train as train_module


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_refused_option_reaches_torchruns_error_file_from_every_process(capsys, tmp_path, monkeypatch, rank):
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = run(capsys, "train", "--batch-size", "3", "--epochs", "1", "--device", "cpu",
                       "--out", tmp_path / "run")
    reason = "--batch-size 3 must be divisible by the number of processes (2)"
    assert code == 2 and (reason in err) == (rank == "0")  # rank 0 also says it on stderr
    record = json.loads(error_file.read_text())["message"]
    assert record["message"] == record["extraInfo"]["py_callstack"] == reason
    assert int(record["extraInfo"]["timestamp"]) > 0
    assert not (tmp_path / "run").exists()


def test_no_error_file_is_written_outside_torchrun(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE", raising=False)
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("training started"))
    code, _, err = run(capsys, "train", "--batch-size", "0", "--out", tmp_path / "run")
    assert code == 2 and "batch_size" in err and list(tmp_path.iterdir()) == []
