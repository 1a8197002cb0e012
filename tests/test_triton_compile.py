"""The fused kernels compile for real GPUs (sm_90, sm_80, each with its own tiles) on a machine without one.

``tests/triton_compile_check.py`` records the launches the launchers choose for a scenario and
compiles each one with Triton's CUDA backend down to a cubin; the interpreter suite checks the
arithmetic, this checks what only the compiler sees (dot shapes, bfloat16, layouts, shared memory
within the architecture's limit, and no register spill at all with the heuristic tiles), and that the
JIT's specialization of every launch does not depend on the batch size (no recompiles mid-training).
The whole inventory (every variant the GPU tests, the benchmarks and the CMRAN step launch, ~160)
takes minutes per architecture: here, the launches that used to spill, that every source reaches
the launchers, and that the benchmarks' small calls launch the variants of their real sizes; the
full run is `python tests/triton_compile_check.py --arch 90` / `--arch 80` (docs/kernels.md).
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


PACKED = {"cmra_bwd_packed_kernel"}
SPLIT = {"cmra_delta_kernel", "cmra_bwd_dkdv_kernel", "cmra_bwd_dq_kernel"}


def _run_check(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECK.parents[1]), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(CHECK), *args], capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.parametrize(("arch", "scenario", "backward"), [
    (90, "ave-bf16", PACKED),
    (90, "ave-bf16-masked", PACKED),  # 64x64 tiles spilled 56 B once packed problems were isolated
    (90, "ave-fp16-d128-masked", SPLIT),  # the one-program backward spilled 40 B at head dim 128
    (90, "ave-bf16-d128", SPLIT),  # 4 sources: the one-program backward would spill; Triton 3.6's forward 32 B
    (90, "ave-fp32-d128-masked", SPLIT),  # spilled 280-448 B with 32-key blocks
    (90, "long-bf16-masked", SPLIT),
    (90, "six-sources-bf16-d128", SPLIT),  # the forward spilled 8-24 B with 4 warps
    # sm_80 (A100) gets its own tiles where sm_90's spill there
    (80, "ave-bf16", PACKED),  # 64x64 tiles: 488-5872 B
    (80, "ave-fp16", PACKED),
    (80, "ave-bf16-masked", PACKED),
    (80, "ave-fp16-d128-masked", SPLIT),  # the forward spilled 40 B with 8 warps
    (80, "long-fp16-d64", SPLIT),  # sm_90's 64-row dK/dV and 128-row dQ blocks: 8 B and 56 B; Triton 3.6: 40 B
    (80, "long-fp32-d128", SPLIT),
])
def test_kernels_compile_for_gpu_without_spills(arch, scenario, backward):
    reason = _cuda_backend_missing(arch)
    if reason:
        pytest.skip(reason)
    proc = _run_check("--arch", str(arch), "--scenario", scenario)
    report = proc.stdout + proc.stderr
    lines = _variant_lines(proc.stdout)
    assert lines and all(line.startswith("ok") for line in lines), report
    assert proc.returncode == 0, report
    kernels = {line.split()[2] for line in lines}
    assert {"cmra_fwd_kernel", *backward} <= kernels and not (kernels & (PACKED | SPLIT) - backward), report
    # the tool fails a kernel with any spill; check here too that every line reported its stack bytes as 0
    spills = [int(m) for m in re.findall(r"stack=(\d+)", proc.stdout)]
    assert len(spills) == len(lines) and max(spills) == 0, report


def _variant_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(("ok ", "FAIL "))]


# Launches that spilled before fp16/bf16 got maxnreg=255 and fp32 its 16-row blocks (8-616 B, under Triton
# 3.6 or 3.9): one driver of each kind, on the architecture where it spilled (tests/triton_compile_check.py --only).
FORMERLY_SPILLING = {
    90: ["gpu-test:reference-ave-3src-bfloat16", "gpu-test:reference-d80-pad-float32", "gpu-test:six-sources-float32"],
    80: ["gpu-test:nan-long-bfloat16", "cmran-fp32"],
}


@pytest.mark.parametrize("arch", [90, 80])
def test_formerly_spilling_launches_compile_without_spills(arch):
    reason = _cuda_backend_missing(arch)
    if reason:
        pytest.skip(reason)
    proc = _run_check("--arch", str(arch), "--only", *FORMERLY_SPILLING[arch])
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    lines = _variant_lines(proc.stdout)
    users = " ".join(line.split(" used by ")[1] for line in lines)
    assert all(label in users for label in FORMERLY_SPILLING[arch]), report  # each driver reached the compiler
    assert all(line.startswith("ok ") and " stack=0 " in line for line in lines), report


def test_every_source_launches_and_the_check_names_its_triton():
    import triton

    proc = _run_check("--keys", "--source", "gpu-tests", "bench-attention", "bench-sublayer", "paper", "cmran-fp32",
                      "cmran-bf16")
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    header = proc.stdout.splitlines()[0]
    assert f"Triton {triton.__version__}" in header and "ptxas" in header and "target sm_90" in header, header
    users = {user for line in proc.stdout.splitlines() if line.startswith("KEY")
             for user in line.split("\tUSERS\t")[1].split("\t")}
    for source in ("bench-attention", "bench-sublayer", "paper", "cmran-fp32", "cmran-bf16"):
        assert source in users, f"{source} launched no kernel: {report[-2000:]}"
    # every test table of the GPU tests reaches the launchers (tests/test_triton_attention_gpu.py)
    for part in ("reference-", "views-", "six-sources-", "nan-", "determinism", "compiled", "functional", "new-batch-"):
        assert any(u.startswith(f"gpu-test:{part}") for u in users), part


def test_small_benchmark_calls_launch_the_variants_of_the_real_sizes():
    # the GPU tests run the benchmarks' calls small; the CMRAN and sublayer drivers run their real
    # sizes on the CPU for minutes, so they are compared by the tool (`--compare-sizes`), not here
    proc = _run_check("--compare-sizes", "--source", "bench-attention", "paper")
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert len(re.findall(r"^ok +(bench-attention|paper): ", proc.stdout, re.M)) == 2, report


def _keys(scenario: str, batch: int) -> set[str]:
    proc = _run_check("--keys", "--scenario", scenario, "--batch", str(batch))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line.split("\tUSERS\t")[0] for line in proc.stdout.splitlines() if line.startswith("KEY")}


@pytest.mark.parametrize(("scenario", "batches"), [
    ("ave-bf16-masked", (8, 1, 13, 4096)),  # B*H = 32, 4, 52, 16384: divisible by 16 or not, equal to 1 or not
    ("long-bf16-masked", (2, 3)),
    ("six-sources-bf16-d128", (4, 7)),
])
def test_new_batch_size_reuses_compiled_kernels(scenario, batches):
    reason = _cuda_backend_missing(90)
    if reason:
        pytest.skip(reason)
    first = _keys(scenario, batches[0])
    # the keys carry the specialization (divisibility attributes, constants), so equal keys mean equal kernels
    assert first and all("tt.divisibility" in key for key in first), first
    for b in batches[1:]:
        assert _keys(scenario, b) == first, f"batch {b} specializes differently from batch {batches[0]}"
