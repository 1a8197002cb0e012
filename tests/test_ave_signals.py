"""Signals (examples/ave/signals.py, issue 22 item 8): SIGINT, SIGTERM and SIGHUP end ``train`` and
``export-synthetic`` the way Ctrl-C does, at every phase of a checkpoint write: one line saying what was
saved, exit status 128 + the signal, every file whole, no temporary file left. A signal that a library
swallows (Python drops exceptions raised in weakref callbacks and ``__del__``) still stops the command.

The phases are reached with ``signal_driver.py`` (a subprocess paused inside a write) and a real
``os.kill``; the swallowed signal is a real SIGINT sent from inside a weakref finalizer, in process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

import examples.ave.trainer as trainer_module
from examples.ave.checkpoint import load_checkpoint
from examples.ave.data.synthetic import SyntheticAVEGenerator

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
              pytest.mark.xdist_group("cmran_train")]

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("signal_driver.py")
TINY = ["--data", "synthetic", "--subset", "8", "--batch-size", "4", "--max-steps", "1", "--eval-batch-size", "8"]

# (phase, signal), for AVEL (small checkpoints): inside epoch 1's best.pt, inside its last.pt, its metrics.jsonl written but not yet renamed
# (the first write of metrics.jsonl is the empty one when the run starts)
TRAIN_PHASES = [("save:1", signal.SIGINT), ("save:2", signal.SIGTERM), ("replace:metrics.jsonl:2", signal.SIGHUP)]


def _start(tmp_path: Path, name: str, phase: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    err = tmp_path / f"{name}.err"
    proc = subprocess.Popen([sys.executable, str(DRIVER), phase, *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=open(err, "w"))
    return proc, err


def _signal_at_pause(proc: subprocess.Popen, sig: int) -> None:
    for line in proc.stdout:
        if line.startswith("PAUSED"):
            proc.send_signal(sig)
            break
    proc.communicate(timeout=120)


def _lines(err: Path) -> list[str]:
    """stderr without the progress bars."""
    text = err.read_text().replace("\r", "\n")
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("epoch ", "videos"))]


def test_a_signal_in_each_phase_of_a_write_ends_cleanly(tmp_path):
    started = [(phase, sig, tmp_path / f"run{i}", *_start(tmp_path, f"run{i}", phase,
                                                           ["train", "--model", "avel", *TINY, "--epochs", "3",
                                                            "--out", str(tmp_path / f"run{i}")]))
               for i, (phase, sig) in enumerate(TRAIN_PHASES)]
    export_out = tmp_path / "export"
    export = _start(tmp_path, "export", "sample:40",
                    ["export-synthetic", "--out", str(export_out), "--num-videos", "60"])
    try:
        for _, sig, _, proc, _ in started:
            _signal_at_pause(proc, sig)
        _signal_at_pause(export[0], signal.SIGTERM)
    finally:
        for proc in [p for *_, p, _ in started] + [export[0]]:
            proc.kill()
    for phase, sig, out, proc, err in started:
        lines = _lines(err)
        head = "interrupted" if sig == signal.SIGINT else f"interrupted by {signal.Signals(sig).name}"
        assert proc.returncode == 128 + sig, (phase, lines)
        assert len(lines) == 1 and lines[0].startswith(f"{head}: {out / 'last.pt'} holds epoch 1 of 3"), (phase, lines)
        assert "--resume" in lines[0]
        # the write the signal landed in was finished, and the epoch saved whole
        assert load_checkpoint(out / "last.pt")["epoch"] == 1 and load_checkpoint(out / "best.pt")["epoch"] == 1
        assert (out / "metrics.jsonl").read_text().count("\n") == 1
        assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], phase
    proc, err = export
    assert proc.returncode == 128 + signal.SIGTERM, _lines(err)
    assert _lines(err)[-1] == "interrupted by SIGTERM: export-synthetic stopped; no file is left half-written"
    left = {p.name for p in export_out.iterdir()}
    assert "visual_feature.h5" not in left and not [n for n in left if "tmp" in n], left


def _sigint_in_a_finalizer() -> None:
    """A real SIGINT that lands inside a weakref callback, where Python reports and drops the exception."""
    class Thing:
        pass

    thing = Thing()
    weakref.finalize(thing, os.kill, os.getpid(), signal.SIGINT)
    del thing


def test_a_signal_swallowed_during_training_still_stops_the_run(capsys, tmp_path, monkeypatch):
    real_step, calls = trainer_module.Trainer.train_step, []

    def step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # epoch 2, step 1
            _sigint_in_a_finalizer()
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", out)
    assert code == 130 and len(calls) == 2, err
    assert err.strip().splitlines()[-1].startswith(f"interrupted: {out / 'last.pt'} holds epoch 1 of 3")
    assert "Exception ignored" not in err and not (out / "result.json").exists()


def test_a_signal_swallowed_during_an_export_still_stops_it(capsys, tmp_path, monkeypatch):
    real_sample, calls = SyntheticAVEGenerator.sample, []

    def sample(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            _sigint_in_a_finalizer()
        return real_sample(self, *args, **kwargs)

    monkeypatch.setattr(SyntheticAVEGenerator, "sample", sample)
    out = tmp_path / "export"
    code, _, err = run(capsys, "export-synthetic", "--out", out, "--num-videos", "40")
    assert code == 130, err
    assert len(calls) <= 32  # stopped at the end of the first block of videos
    assert not [p.name for p in out.iterdir() if "tmp" in p.name] and not (out / "visual_feature.h5").exists()
