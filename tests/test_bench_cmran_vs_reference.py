"""``benchmarks/bench_cmran_vs_reference.py`` without the reference: its checks, and its plumbing on a stand-in.

The stand-in ``model/main_model.py`` has the reference's interface (``supv_main_model``, built with
``.cuda()`` calls, called as ``model(visual, audio)`` and returning ``(is_event (T, B, 1), event (B, 28))``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_cmran_vs_reference.py"

STAND_IN = '''
import torch
from torch import nn

class supv_main_model(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = nn.Linear(512, 8).cuda()  # the reference calls .cuda() while building
        self.is_event, self.event = nn.Linear(8 + 128, 1), nn.Linear(8 + 128, 28)

    def forward(self, visual, audio):
        x = torch.cat([self.visual(visual).mean((2, 3)), audio], -1)  # (B, T, 136)
        return self.is_event(x).transpose(0, 1), self.event(x).mean(1)
'''


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_names_the_missing_reference(tmp_path):
    proc = _run("--reference-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "--reference-dir" in proc.stderr and "model/main_model.py" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (("--modes", "eager,fp8"), "--modes must be a comma list"),
    (("--steps", "0"), "--steps and --threads must be >= 1"),
    (("--threads", "0"), "--steps and --threads must be >= 1"),
    (("--warmup", "-1"), "--warmup >= 0"),
])
def test_rejects_bad_options(tmp_path, args, message):
    proc = _run("--reference-dir", str(tmp_path), *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_times_the_stand_in_beside_avattn(tmp_path):
    (tmp_path / "ref" / "model").mkdir(parents=True)
    (tmp_path / "ref" / "model" / "main_model.py").write_text(STAND_IN)
    proc = _run("--reference-dir", str(tmp_path / "ref"), "--modes", "eager", "--steps", "3", "--warmup", "0",
                "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [(r["case"], r["kind"]) for r in rows] == [
        ("reference fp32", "train"), ("reference fp32", "eval"), ("avattn eager", "train"), ("avattn eager", "eval")]
    assert all(len(r["samples_ms"]) == 3 and r["median_ms"] == statistics.median(r["samples_ms"]) for r in rows)
    reference = {r["kind"]: r["samples_ms"] for r in rows[:2]}
    for r in rows[2:]:  # the median of the paired ratios, not a ratio of medians
        paired = statistics.median(a / b for a, b in zip(reference[r["kind"]], r["samples_ms"], strict=True))
        assert r["speedup_vs_reference"] == pytest.approx(paired, rel=1e-12)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.json"]
    assert "avattn eager" in proc.stdout and "reference / this" in proc.stdout
