"""DDP: 2 CPU processes (torchrun, gloo) train to the same parameters as 1 process on the same global batch.

With dropout off, the same seed and a global batch of 4 (2 per process), each DDP step averages
the gradients of the two halves of the batch the single process sees whole (DistributedSampler
gives rank r the items r, r+2, ... of the same permutation), so the runs agree up to float
rounding in the gradient all-reduce.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from examples.cmran.__main__ import main as cli
from examples.cmran.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
ARGS = ["train", "--data", "synthetic", "--subset", "8", "--batch-size", "4", "--epochs", "2",
        "--dropout", "0", "--visual-dropout", "0", "--eval-batch-size", "4", "--seed", "3"]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, monkeypatch):
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "examples.cmran", *ARGS, "--out", str(ddp_out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy") == 1, "only rank 0 logs"
    assert "x 2 process(es)" in proc.stdout

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli([*ARGS, "--out", str(single_out)]) == 0
    finally:
        torch.set_num_threads(n)

    assert json.loads((ddp_out / "config.json").read_text())["world_size"] == 2
    ddp, single = load_checkpoint(ddp_out / "last.pt"), load_checkpoint(single_out / "last.pt")
    assert len(ddp["rng"]) == 2 and len(single["rng"]) == 1
    torch.manual_seed(3)  # the initial parameters, to size the comparison
    from examples.cmran.model import CMRAN

    init = CMRAN(single["model_config"]).state_dict()
    moved = max((single["model"][k] - init[k]).abs().max().item() for k in init)
    diff = max((ddp["model"][k] - single["model"][k]).abs().max().item() for k in init)
    assert moved > 1e-3, "training did not move the parameters"
    assert diff < 1e-5, f"DDP and single-process parameters differ by {diff} (training moved them by {moved})"
    for k in init:
        torch.testing.assert_close(ddp["model"][k], single["model"][k], rtol=1e-4, atol=1e-5, msg=k)

    rd = [json.loads(line) for line in (ddp_out / "metrics.jsonl").read_text().splitlines()]
    rs = [json.loads(line) for line in (single_out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rd] == [r["epoch"] for r in rs] == [1, 2]
    for a, b in zip(rd, rs):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_acc"] == pytest.approx(b["val_acc"], abs=1.5 / 80)
    res_d = json.loads((ddp_out / "result.json").read_text())
    res_s = json.loads((single_out / "result.json").read_text())
    assert res_d["test_segments"] == res_s["test_segments"] == 80  # sharded evaluation covers every video once
    assert res_d["test_acc"] == pytest.approx(res_s["test_acc"], abs=1.5 / 80)
