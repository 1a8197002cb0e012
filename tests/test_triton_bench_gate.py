"""The GPU benchmark's correctness gate (``benchmarks/bench_attention_gpu.py``), on the CPU.

The gate is the flash-attention rule ``max|x - ref| <= 2 * max|naive_same_dtype - ref| + atol``
applied to the output and every gradient before a provider is timed. Here: the rule itself on
hand-made tensors, and the whole script (``--cpu-smoke``: tiny shapes, fp32, Triton interpreter)
with a deliberately wrong provider, which must be marked FAILED in every output and make the
script exit non-zero, while the same run without it exits 0.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_attention_gpu as bench  # noqa: E402


def test_the_gate_passes_within_twice_torch_s_error_and_fails_beyond():
    torch.manual_seed(0)
    ref = [torch.randn(3, 5, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    same = [r + 1e-3 * torch.randn_like(r) for r in ref]  # torch's own error in the low dtype
    names = ["out", "dq"]
    assert all(c["ok"] for c in bench.gate(names, same, same, ref, 1e-4))
    within = [r + 1.5e-3 * torch.sign(torch.randn_like(r)) * (s - r).abs().max() / 1e-3 for r, s in zip(ref, same)]
    assert all(c["ok"] for c in bench.gate(names, within, same, ref, 1e-4))  # 1.5x torch's error: allowed
    wrong = [same[0], ref[1] * 1.01]  # one gradient off by 1 %: far beyond 2x torch's error
    checks = bench.gate(names, wrong, same, ref, 1e-4)
    assert [c["ok"] for c in checks] == [True, False]
    assert "dq" in bench.gate_summary(checks) and "FAILED" in bench.gate_summary(checks)
    nan = [same[0].clone(), same[1]]
    nan[0][0, 0] = float("nan")
    assert not bench.gate(names, nan, same, ref, 1e-4)[0]["ok"]
    assert not bench.gate(names, [same[0][:2], same[1]], same, ref, 1e-4)[0]["ok"]  # wrong shape


_RUN = """
import sys
sys.path.insert(0, {root!r})
from benchmarks import bench_attention_gpu as b
if {wrong}:
    real = b.attention_providers
    def with_wrong(*args):
        providers = real(*args)
        providers["wrong"] = lambda q, ks, vs, masks, scale: b.naive_attention(q, ks, vs, masks, scale * 1.05)
        return providers
    b.attention_providers = with_wrong
sys.exit(b.main(["--cpu-smoke", "--groups", "attention", "--providers", {providers!r}, "--out", {out!r}]))
"""


def _smoke(tmp_path, wrong: bool, providers: str):
    out = tmp_path / ("wrong" if wrong else "clean")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = _RUN.format(root=str(ROOT), wrong=wrong, providers=providers, out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return proc, out, rows


def test_wrong_provider_is_marked_failed_and_exits_nonzero(tmp_path):
    proc, out, rows = _smoke(tmp_path, True, "sdpa,wrong")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    wrong = [r for r in rows if r["provider"] == "wrong"]
    assert len(wrong) == 4 and all(r["status"] == "FAILED" and r["ms"] == "nan" for r in wrong), rows  # 2 shapes x 2 modes
    assert all(r["status"] == "ok" for r in rows if r["provider"] != "wrong"), rows
    md = (out / "results.md").read_text()
    assert "**FAILED** for 4 rows" in md and md.count("| wrong | FAILED |") == 4
    meta = json.loads((out / "results.json").read_text())["meta"]
    assert len(meta["failed"]) == 4 and all(line.endswith("wrong") for line in meta["failed"])
    assert "FAILED" in proc.stdout and "FAILED" in proc.stderr


def test_clean_run_passes_and_records_sdpa_backend(tmp_path):
    pytest.importorskip("triton")
    proc, out, rows = _smoke(tmp_path, False, "sdpa,avattn-triton")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert {r["provider"] for r in rows} == {"naive", "sdpa", "avattn-triton"}
    assert all(r["status"] == "ok" and float(r["ms"]) > 0 for r in rows), rows
    # fwd+bwd rows gate every gradient: the worst tensor is named
    assert all(r["gate"] for r in rows)
    sdpa = [r["sdpa_backend"] for r in rows if r["provider"] == "sdpa"]
    assert sdpa and all(b in ("flash", "efficient", "cudnn", "math", "overrideable") for b in sdpa), sdpa
    assert all(r["sdpa_backend"] == "-" for r in rows if r["provider"] != "sdpa")


def test_cases_run_by_value_and_a_budget_skips_what_would_not_fit():
    shapes = bench.shapes(quick=True)
    todo = bench.cases(["bf16"], ["attention", "sublayer"], shapes)
    labels = [f"{g} {s['name']} {m}" for _, g, s, m in todo]
    # per shape the core, then the model's sublayer (its own shapes only), fwd first
    assert labels[:4] == ["attention ave-B4096 fwd", "attention ave-B4096 fwd+bwd", "sublayer ave-B4096 fwd",
                          "sublayer ave-B4096 fwd+bwd"]
    assert not any(label.startswith("sublayer") and ("masked" in label or "d128" in label) for label in labels)
    clock = bench.CaseClock(100.0)
    assert clock.predict("attention", "fwd") == bench.FIRST_GUESS_S[("attention", "fwd")] and clock.fits("attention", "fwd")
    clock.record("attention", "fwd", 70.0)
    clock.record("attention", "fwd", 20.0)  # the longest so far is what a case of its kind is expected to take
    assert clock.predict("attention", "fwd") == 70.0
    clock.start -= 40.0  # 40 s spent: 70 more would end past the 100 s budget, a 15 s sublayer case would not
    assert not clock.fits("attention", "fwd") and clock.fits("sublayer", "fwd+bwd")


def test_a_run_cut_short_keeps_every_finished_case(tmp_path):
    pytest.importorskip("triton")
    out = tmp_path / "cut"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_attention_gpu.py"), "--cpu-smoke", "--groups", "attention",
           "--providers", "sdpa,avattn-triton", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("  attention smoke-B2 fp32 fwd:"):  # the first case ended; the next one runs
                proc.send_signal(signal.SIGINT)  # what `timeout -s INT` sends
                break
        rest, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    log = "".join(seen) + (rest or "")
    assert proc.returncode == 130, log[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["meta"]["interrupted"] is True, log[-3000:]
    first = [r for r in result["rows"] if r["shape"] == "smoke-B2" and r["mode"] == "fwd"]
    assert {r["provider"] for r in first} == {"naive", "sdpa", "avattn-triton"}
    assert all(r["status"] == "ok" and float(r["ms"]) > 0 for r in first), first
    assert "interrupted after" in log
