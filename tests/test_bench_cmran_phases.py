"""``benchmarks/bench_cmran.py``'s phases, time budget and partial results, on the CPU.

scripts/gpu_check.sh runs it last, with ``--quick --budget-s``: phases in the order of their value
(eager and bf16, then CUDA graphs, at the first batch; then torch.compile; then the other batches),
a phase started only if it should end within the budget, results.json rewritten after every phase
and kept when ``timeout`` cuts the run short with SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_cmran as bc  # noqa: E402


def test_quick_phases_come_in_the_order_of_their_value():
    got = bc.phases(list(bc.QUICK_MODES), ["sdpa", "triton"], [32, 256], quick=True)
    assert got == [
        (32, "sdpa", ["eager", "bf16"]), (32, "triton", ["eager", "bf16"]),
        (32, "sdpa", ["cudagraphs"]), (32, "triton", ["cudagraphs"]),
        (32, "sdpa", ["compile"]), (32, "triton", ["compile"]),
        (256, "sdpa", ["eager", "bf16"]), (256, "triton", ["eager", "bf16"]),
        (256, "sdpa", ["cudagraphs"]), (256, "triton", ["cudagraphs"]),
        (256, "sdpa", ["compile"]), (256, "triton", ["compile"]),
    ]
    # without --quick: every mode of a batch and backend in one phase, as before
    assert bc.phases(["eager", "compile"], ["auto"], [32, 64], quick=False) == [
        (32, "auto", ["eager", "compile"]), (64, "auto", ["eager", "compile"])]


def test_budget_predicts_a_phase_from_what_ran():
    budget = bc.Budget(100.0)
    assert budget.predict(32, ["eager", "cudagraphs"]) == bc.FIRST_GUESS_S["eager"] + bc.FIRST_GUESS_COMPILED_S
    rows = [{"mode": "eager", "batch": 32, "warmup_s": 2.0}, {"mode": "bf16", "batch": 32, "warmup_s": 4.0}]
    budget.record(rows, 10.0)  # 6 s of warm-ups, 4 s of floors and timing shared by the two
    assert budget.predict(32, ["eager"]) == 4.0 and budget.predict(256, ["bf16"]) == 8 * (4.0 + 2.0)
    budget.record([{"mode": "cudagraphs", "batch": 32, "warmup_s": 50.0}], 52.0)
    # a compiled mode's warm-up is its compile: it does not grow with the batch; an unseen compiled mode
    # is expected to cost what the dearest one did
    assert budget.predict(256, ["cudagraphs"]) == 50.0 + 8 * 2.0 and budget.predict(32, ["compile"]) == 52.0
    assert budget.fits(32, ["compile"]) and not budget.fits(32, ["compile", "compile"])
    assert bc.Budget(None).fits(256, ["compile"] * 10)


def _start(out: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_cmran.py"), "--device", "cpu", "--quick", "--modes", "eager",
           "--steps", "1", "--warmup", "0", "--out", str(out), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_results_are_written_after_every_phase_and_kept_when_cut_short(tmp_path):
    out = tmp_path / "cmran"
    proc = _start(out, "--batch", "2,96")
    try:
        deadline = time.monotonic() + 240
        while not (out / "results.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # during the B=96 phase, as `timeout -s INT` would
        log, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 130, log[-3000:]
    result = json.loads((out / "results.json").read_text())
    meta = result["meta"]
    assert meta["interrupted"] is True and meta["phases_done"] == ["B=2 auto eager"], meta
    assert [(r["batch"], r["mode"]) for r in result["rows"]] == [(2, "eager")]
    assert result["rows"][0]["train_step"]["median_ms"] > 0


def test_a_phase_that_would_not_fit_is_skipped_and_listed(tmp_path):
    out = tmp_path / "cmran"
    proc = _start(out, "--batch", "2", "--modes", "eager,compile", "--budget-s", "60")
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log[-3000:]
    meta = json.loads((out / "results.json").read_text())["meta"]
    # eager (first guess 20 s) fits the 60 s; compile (first guess 120 s) does not: skipped, not run
    assert meta["phases_done"] == ["B=2 auto eager"] and meta["skipped_for_time"] == ["B=2 auto compile"], meta
    assert "skipped for the 60 s budget: B=2 auto compile" in log
