"""The fused kernels compile for real GPUs (sm_90, sm_80) on a machine without one.

``tests/triton_compile_check.py`` records the launches the launchers choose for a scenario and
compiles each one with Triton's CUDA backend down to a cubin; the interpreter suite checks the
arithmetic, this checks what only the compiler sees (dot shapes, bfloat16, layouts, shared memory
within the architecture's limit, and no register spills beyond a few bytes with the heuristic tiles).
Each scenario runs in a fresh process, because kernels imported
under ``TRITON_INTERPRET=1`` (as the interpreter suite does in this process) cannot be compiled.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("triton") is None:
    pytest.skip("Triton is not installed; there are no kernels to compile", allow_module_level=True)

CHECK = Path(__file__).with_name("triton_compile_check.py")


def _cuda_backend_missing(arch: int) -> str | None:
    try:
        from triton.backends.nvidia.compiler import get_ptxas_version
    except ImportError as e:
        return f"Triton has no CUDA backend here ({e})"
    try:
        get_ptxas_version(arch)
    except Exception as e:  # noqa: BLE001 - any failure to find ptxas means we cannot compile
        return f"Triton's ptxas is unavailable ({e})"
    return None


@pytest.mark.parametrize(("arch", "scenario"), [
    (90, "ave-bf16"), (90, "ave-fp32"), (90, "long-bf16-masked"), (90, "five-sources-fp16"), (80, "long-fp32-d128"),
])
def test_kernels_compile_for_gpu(arch, scenario):
    reason = _cuda_backend_missing(arch)
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECK.parents[1]), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(CHECK), "--arch", str(arch), "--scenario", scenario],
                          capture_output=True, text=True, env=env, timeout=900)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert lines and all(line.startswith("ok") for line in lines), report
    kernels = {line.split()[3] for line in lines}
    assert "cmra_fwd_kernel" in kernels, report
    packed = scenario.startswith("ave") and "fp32" not in scenario  # fp32 takes the split backward
    backward = {"cmra_bwd_packed_kernel"} if packed else {"cmra_bwd_dkdv_kernel", "cmra_bwd_dq_kernel"}
    assert backward <= kernels, report
    # The heuristic tiles were chosen to compile without register spills (stack bytes per thread).
    spills = [int(m) for m in re.findall(r"stack=(\d+)", proc.stdout)]
    assert len(spills) == len(lines) and max(spills) <= 64, report
