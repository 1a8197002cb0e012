"""``--amp auto``: bf16 where the device has native bf16 products, float32 elsewhere; the choice is logged and stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from examples.ave.amp import native_bf16, resolve_amp
from examples.cmran.__main__ import main as cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "synthetic", "--subset", "8", "--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8"]
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)


def _resolve_in_subprocess(env: dict) -> str:
    code = "import torch; from examples.ave.amp import resolve_amp; print(resolve_amp('auto', torch.device('cpu'))[0])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_avx2_dispatch_counts_as_not_native_bf16():
    assert _resolve_in_subprocess(AVX2) == "none"


def test_cpu_choice_follows_the_dispatch_and_the_instructions():
    native, why = native_bf16(torch.device("cpu"))
    capability = torch.backends.cpu.get_cpu_capability()
    assert capability in why
    if not capability.startswith("AVX512"):
        assert not native
    if native:  # then bf16 products must really run: a bf16 matmul through oneDNN
        assert torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_amp("auto", torch.device("cpu"))[0] == ("bf16" if native else "none")
    assert resolve_amp("fp16", torch.device("cpu")) == ("fp16", "amp=fp16")  # explicit modes pass through


def test_train_stores_the_resolved_mode_and_that_it_was_auto(capsys, tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = cli(["train", *TINY, "--epochs", "1", "--amp", "auto", "--out", str(tmp_path / "run")])
    finally:
        torch.set_num_threads(n)
    stdout = capsys.readouterr().out
    assert code == 0
    expected = resolve_amp("auto", torch.device("cpu"))[0]
    assert f"amp=auto -> {expected}" in stdout
    train_cfg = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert train_cfg["amp"] == expected and train_cfg["amp_auto"] is True


def _auto_run(tmp_path, amp: str):
    """A run folder (random CMRAN, 8 synthetic videos a split) whose amp ``auto`` chose as ``amp``."""
    from examples.ave.config import TrainConfig
    from examples.ave.import_reference import write_run
    from examples.cmran.config import CMRANConfig
    from examples.cmran.model import CMRAN

    torch.manual_seed(0)
    cfg = CMRANConfig()
    out = tmp_path / "run"
    train_cfg = TrainConfig(out=str(out), subset=8, amp=amp, amp_auto=True).resolve("supervised")
    write_run(out, cfg, CMRAN(cfg).state_dict(), train_cfg, {"from": "test"})
    return out / "best.pt"


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_run_trained_with_auto_chooses_again_on_the_device_at_hand(command, tmp_path, capsys, monkeypatch):
    import examples.ave.amp as amp_module

    ckpt = _auto_run(tmp_path, "bf16")  # chosen on a bf16 machine; this one (as patched) has no native bf16
    monkeypatch.setattr(amp_module, "native_bf16", lambda device: (False, "patched"))
    extra = ["--out", str(tmp_path / "events.jsonl")] if command == "predict" else []
    assert cli([command, "--checkpoint", str(ckpt), *extra]) == 0
    assert "amp=auto -> none (no native bf16: patched)" in capsys.readouterr().out
    assert cli([command, "--checkpoint", str(ckpt), "--amp", "none", *extra]) == 0  # an explicit --amp wins
    assert "amp=auto" not in capsys.readouterr().out


def test_resuming_compares_the_effective_amp_not_how_it_was_chosen(tmp_path):
    from examples.ave.checkpoint import CheckpointError, check_resumable
    from examples.ave.config import TrainConfig
    from examples.cmran.config import CMRANConfig

    model_cfg = CMRANConfig()

    def cfg(amp, amp_auto):
        return TrainConfig(out=str(tmp_path), amp=amp, amp_auto=amp_auto).resolve("supervised")

    ckpt = {"model_config": model_cfg, "train_config": cfg("bf16", False), "epoch": 1}
    check_resumable(ckpt, model_cfg, cfg("bf16", True), "last.pt")  # --amp bf16 resumed with --amp auto -> bf16
    with pytest.raises(CheckpointError, match="'amp': \\('bf16', 'none'\\)"):
        check_resumable(ckpt, model_cfg, cfg("none", True), "last.pt")  # auto chose otherwise here


@pytest.mark.parametrize("model", ["avel", "psp"])
def test_fp16_autocast_trains_the_lstm_models_on_cpu(model, tmp_path, capsys):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = cli(["train", "--model", model, "--setting", "weak", *TINY, "--epochs", "1", "--amp", "fp16",
                    "--out", str(tmp_path / "run")])
    finally:
        torch.set_num_threads(n)
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test_segments"] > 0
