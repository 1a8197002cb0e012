"""DDP: 2 CPU processes (torchrun, gloo) take the same global batches and the same gradients as 1 process.

What DDP must get right is the sharding (each step's global batch is the single process's batch,
split over the ranks, no item twice) and the gradient averaging (the all-reduced gradient is the
gradient of the global batch's mean loss). Both are compared step by step, which is well-posed;
the trained parameters are not: Adam divides each gradient entry by its own running magnitude, so
rounding-level differences on near-zero entries become lr-sized parameter differences.

The runs use ``--lr 1e-12``: Adam's steps (about lr per entry) stay below float32's resolution of
the weights, so every step's gradient is taken at the initial weights in both runs, and every step
can be compared against a float64 gradient of the same batch. The DDP gradient must be as close to
that float64 gradient as the single process's float32 gradient is (the flash-attention rule: at
most twice PyTorch's own float32 error, plus an atol of a few float32 ulps of the gradient's norm).
A DDP run that sums instead of averaging is off by 100%, one that shards wrongly takes other items.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from examples.ave.checkpoint import load_checkpoint
from examples.ave.config import TrainConfig
from examples.ave.datasets import build_splits
from examples.cmran.__main__ import main as cli
from examples.cmran.config import CMRANConfig
from examples.cmran.model import CMRAN

REPO = Path(__file__).resolve().parents[1]
SEED = 3
ARGS = ["train", "--data", "synthetic", "--subset", "8", "--batch-size", "4", "--epochs", "2",
        "--dropout", "0", "--visual-dropout", "0", "--eval-batch-size", "4", "--seed", str(SEED), "--lr", "1e-12"]

def _flat(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([grads[k].flatten().double() for k in sorted(grads)])

def _float64_gradients(model_cfg: CMRANConfig, train_cfg: TrainConfig, steps: list[dict]) -> list[torch.Tensor]:
    """The gradient of each step's global-batch mean loss at the initial weights, in float64."""
    torch.manual_seed(SEED)  # the trainer's initialization
    model = CMRAN(model_cfg).double().train()
    train_split = build_splits(model_cfg, train_cfg)["train"]
    out = []
    for rec in steps:
        items = [train_split[i] for i in sorted(i for rank in rec["indices"] for i in rank)]
        visual, audio, segments, videos = (torch.stack([torch.as_tensor(it[j]) for it in items]) for j in range(4))
        model.zero_grad(set_to_none=True)
        model.loss(model(visual.double(), audio.double()), segments, videos).backward()
        out.append(_flat({n: p.grad for n, p in model.named_parameters()}))
    return out

@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, monkeypatch):
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "examples.cmran", *ARGS, "--out", str(ddp_out), "--debug-grads-out", str(tmp_path / "ddp.grads")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy") == 1, "only rank 0 logs"
    assert "x 2 process(es)" in proc.stdout

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli([*ARGS, "--out", str(single_out), "--debug-grads-out", str(tmp_path / "single.grads")]) == 0
    finally:
        torch.set_num_threads(n)
    assert json.loads((ddp_out / "config.json").read_text())["world_size"] == 2

    ddp_steps = torch.load(tmp_path / "ddp.grads", weights_only=True)
    single_steps = torch.load(tmp_path / "single.grads", weights_only=True)
    assert [(r["epoch"], r["step"]) for r in ddp_steps] == [(r["epoch"], r["step"]) for r in single_steps] == [
        (1, 0), (1, 1), (2, 0), (2, 1)]

    # sharding: each step's global batch is the single process's, split 2 + 2 with no item twice
    for d, s in zip(ddp_steps, single_steps):
        assert len(d["indices"]) == 2 and all(len(rank) == 2 for rank in d["indices"]), d["indices"]
        assert sorted(d["indices"][0] + d["indices"][1]) == sorted(s["indices"][0]), (d["indices"], s["indices"])

    # averaging: the all-reduced gradient is as close to float64 as the single process's own float32 gradient
    ckpt = load_checkpoint(single_out / "last.pt")
    reference = _float64_gradients(ckpt["model_config"], ckpt["train_config"], single_steps)
    for d, s, g64 in zip(ddp_steps, single_steps, reference):
        g_ddp, g_single = _flat(d["grad"]), _flat(s["grad"])
        own_error = (g_single - g64).norm()
        atol = 4 * torch.finfo(torch.float32).eps * g64.norm()
        ddp_error = (g_ddp - g64).norm()
        assert own_error < 1e-3 * g64.norm(), "the float32 gradient itself is off: the reference is not this batch's"
        assert ddp_error <= 2 * own_error + atol, (
            f"epoch {d['epoch']} step {d['step']}: DDP gradient error {ddp_error:.3e} vs the single process's "
            f"float32 error {own_error:.3e} (|g| = {g64.norm():.3e})")

    rd = [json.loads(line) for line in (ddp_out / "metrics.jsonl").read_text().splitlines()]
    rs = [json.loads(line) for line in (single_out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rd] == [r["epoch"] for r in rs] == [1, 2]
    for a, b in zip(rd, rs):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == pytest.approx(b["val_acc"], abs=1.5 / 80)
    res_d = json.loads((ddp_out / "result.json").read_text())
    res_s = json.loads((single_out / "result.json").read_text())
    assert res_d["test_segments"] == res_s["test_segments"] == 80  # sharded evaluation covers every video once
    assert res_d["test_acc"] == pytest.approx(res_s["test_acc"], abs=1.5 / 80)
