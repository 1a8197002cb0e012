"""``scripts/gpu_check.sh``, the prepared GPU run, as a dry run on a machine without a GPU.

Without CUDA its GPU steps skip with a message, but it still writes its files and must exit 0;
it must respect the limits of the lent GPU machine (at most 8 files under $OUT, none deeper
than $OUT/a/b/file, 16 MiB each), fit one of its commands (570 s by default, the steps' shares
adding up to it) and install nothing (that machine has no network). The paper shape check it runs
is exercised on CPU through its ``--cpu-smoke`` mode (interpreter, fp16). That the benchmark steps
keep what they measured when cut short is tested with the benchmarks
(``tests/test_triton_bench_gate.py``, ``tests/test_bench_cmran_phases.py``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_script_installs_nothing_and_calls_the_agreed_commands():
    text = SCRIPT.read_text()
    assert "pip" not in text  # no pip, pip3, python -m pip: the GPU machine has no network
    assert "tests/test_triton_attention_gpu.py" in text and "benchmarks/gpu_paper_check.py" in text
    assert "benchmarks/bench_attention_gpu.py --quick --budget-s" in text
    assert "benchmarks/bench_cmran.py --device cuda --quick --backends sdpa,triton --steps 10 --warmup 3" in text
    assert text.count("run_step ") >= 6  # the function and every step under a timeout


def _plan(total_s: str | None) -> list[tuple[str, int, int, int]]:
    env = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_TOTAL_S"}
    if total_s is not None:
        env["GPU_CHECK_TOTAL_S"] = total_s
    proc = subprocess.run(["bash", str(SCRIPT), "--plan"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^(\d \w+): share (\d+) s of (\d+), ends by (\d+) s of (\d+)$", proc.stdout, re.M)
    assert len(rows) == 5, proc.stdout
    return [(name, int(share), int(end), int(total)) for name, share, _, end, total in rows]


def test_step_budgets_add_up_to_the_total():
    plan = _plan(None)
    assert [name for name, *_ in plan] == ["1 env", "2 tests", "3 paper", "4 bench", "5 cmran"]  # order of value
    assert all(total == 570 for *_, total in plan)  # the default: one command of the GPU machine, 600 s, less 30
    assert sum(share for _, share, _, _ in plan) == 570
    ends = [end for _, _, end, _ in plan]
    assert ends == [sum(share for _, share, _, _ in plan[: i + 1]) for i in range(5)] and ends[-1] == 570
    # the benchmarks' own budgets (20 s and 30 s short of their steps' deadlines) leave them time to run
    assert ends[3] - ends[2] > 20 + 60 and ends[4] - ends[3] > 30 + 60
    scaled = _plan("300")
    assert [end for _, _, end, _ in scaled][-1] == 300 and all(total == 300 for *_, total in scaled)
    assert [end for _, _, end, _ in scaled] == sorted(end for _, _, end, _ in scaled)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script does the real (minutes-long) run")
def test_dry_run_on_cpu(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(OUT=str(out), PYTHON=sys.executable, GPU_CHECK_TOTAL_S="300")
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 1 <= len(files) <= 8, files
    assert all(len(p.relative_to(out).parts) <= 3 for p in files), files  # $OUT/a/b/file at most
    assert all(p.stat().st_size <= 16 * 2**20 for p in files), files
    summary = (out / "summary.txt").read_text()
    assert "1 env: ok" in summary and "torch" in summary and "no CUDA GPU" in summary
    for step in ("2 tests", "3 paper", "4 bench", "5 cmran"):
        assert f"{step}: skipped (no CUDA GPU" in summary, summary
    assert summary.strip().splitlines()[-1].startswith("5 cmran"), summary  # the summary ends the file
    assert "== summary" in proc.stdout


def test_paper_check_runs_on_cpu_under_the_interpreter():
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_paper_check.py"), "--cpu-smoke"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    for name in ("out", "dq", "dk0", "dk1", "dv0", "dv1"):
        assert f"  {name} " in proc.stdout and "FAILED" not in proc.stdout
    assert proc.stdout.strip().endswith("paper check: ok")


def test_benchmarks_package_is_not_shadowed_by_another_on_the_path(tmp_path):
    # a regular package named `benchmarks` elsewhere on the path (as on a shared GPU image) would win
    # over a namespace package; benchmarks/ is a regular package, first on the path the script sets
    other = tmp_path / "benchmarks"
    other.mkdir()
    (other / "__init__.py").write_text("SHADOW = True\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    code = "import benchmarks, benchmarks.bench_attention_gpu as b; print(benchmarks.__file__, hasattr(b, 'gate'))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(ROOT / "benchmarks" / "__init__.py"), "True"]
