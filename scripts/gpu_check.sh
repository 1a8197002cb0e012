#!/usr/bin/env bash
# One prepared GPU run of avattn's fused kernels; call from the repository root:
#
#     OUT=/some/dir bash scripts/gpu_check.sh          # the run (GPU_CHECK_TOTAL_S, default 570 s)
#     bash scripts/gpu_check.sh --plan                 # print each step's share and deadline, run nothing
#
# Made for the lent GPU machine: one command of at most 600 s, Python 3.12, torch 2.11, Triton 3.6,
# no network. Steps, in the order of their value; each has a share of the total (SHARES below, in
# seconds of the default 570, scaled to GPU_CHECK_TOTAL_S) and runs under `timeout` until the sum of
# the shares up to it has passed, so a step may use what the steps before it left unused, never what
# the steps after it were given (expected times on an H100 in docs/benchmarks.md):
#   1 env     nvidia-smi, versions, GPU name, device-to-device copy bandwidth
#   2 tests   tests/test_triton_attention_gpu.py: every kernel variant that steps 3-5 launch, against
#             the float64 reference (pytest-xdist -n 8 when installed); one line per test as it ends
#   3 paper   benchmarks/gpu_paper_check.py: B=4096 bf16 forward and gradients vs the fp32
#             reference beside torch's own bf16 error; registers / spills / shared memory
#   4 bench   benchmarks/bench_attention_gpu.py --quick, gated; starts a case only if it should end
#             within the step's time; results rewritten after every case
#   5 cmran   benchmarks/bench_cmran.py --quick: eager, bf16 and CUDA graphs at B=32 first, then
#             torch.compile and B=256 while time is left; results rewritten after every phase
# Writes at most 8 files under $OUT (no deeper than $OUT/a/b/file, 16 MiB each): summary.txt
# (environment + one line per step), steps.log (every step's output, as it comes), tests/junit.xml,
# bench/results.{md,json}, cmran/results.json. A step cut off by its timeout keeps what it wrote.
# Installs nothing (the GPU machine has no network). Without a CUDA GPU (dry run) steps 2-5 skip
# with a message and the files are still written. Exit status: 0 when no step failed or timed out,
# 1 otherwise.
set -u
unset TRITON_INTERPRET

STEPS=("1 env" "2 tests" "3 paper" "4 bench" "5 cmran")
SHARES=(25 150 40 150 205)  # seconds of the default total; they add up to it
DEFAULT_TOTAL_S=570
TOTAL_S=${GPU_CHECK_TOTAL_S:-$DEFAULT_TOTAL_S}

# deadline I: seconds from the start by which step I (0-based) must end: the shares up to it, scaled
deadline() {
    local i sum=0
    for ((i = 0; i <= $1; i++)); do sum=$((sum + SHARES[i])); done
    echo $((sum * TOTAL_S / DEFAULT_TOTAL_S))
}

if [ "${1:-}" = "--plan" ]; then
    for i in "${!STEPS[@]}"; do
        echo "${STEPS[$i]}: share ${SHARES[$i]} s of $DEFAULT_TOTAL_S, ends by $(deadline "$i") s of $TOTAL_S"
    done
    exit 0
fi

OUT=${OUT:-$PWD/gpu_out}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONHASHSEED=0

mkdir -p "$OUT"
rm -rf "$OUT/summary.txt" "$OUT/steps.log" "$OUT/tests" "$OUT/bench" "$OUT/cmran" "$OUT/cmran.tar.gz"
SUMMARY=$OUT/summary.txt
LOG=$OUT/steps.log
: > "$LOG"
RESULTS=()
FAILED=0
START=$SECONDS

# step_time I: seconds step I may run (to its deadline)
step_time() { echo $(( $(deadline "$1") - (SECONDS - START) )); }

# run_step I CMD...: run CMD under timeout until step I's deadline, output to steps.log; record
# ok / FAILED / timeout. SIGINT first: Python writes what it has and pytest prints its summary.
run_step() {
    local i=$1 name=${STEPS[$1]}
    shift
    local secs
    secs=$(step_time "$i")
    if [ "$secs" -lt 5 ]; then
        RESULTS+=("$name: timeout (no time left of the ${TOTAL_S} s)")
        FAILED=1
        return
    fi
    echo "== $name (timeout ${secs} s): $*" | tee -a "$LOG"
    local t0=$SECONDS rc
    timeout -s INT -k 10 "$secs" "$@" >> "$LOG" 2>&1
    rc=$?
    local took=$((SECONDS - t0)) status
    if [ $rc -eq 0 ]; then
        status=ok
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        status="timeout after ${secs} s"
        FAILED=1
    else
        status="FAILED (exit $rc)"
        FAILED=1
    fi
    RESULTS+=("$name: $status (${took} s)")
    if [ "$status" != ok ]; then
        echo "-- $name: $status; last lines:"
        tail -n 25 "$LOG"
    fi
}

skip_step() {
    echo "== $1: skipped: $2" | tee -a "$LOG"
    RESULTS+=("$1: skipped ($2)")
}

# 1 environment -------------------------------------------------------------------------------
{
    echo "avattn GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm), repository $PWD"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) $(git status --porcelain 2>/dev/null | wc -l | tr -d ' ') changed files"
    echo "plan: $(for i in "${!STEPS[@]}"; do printf '%s by %s s; ' "${STEPS[$i]}" "$(deadline "$i")"; done)"
    if command -v nvidia-smi > /dev/null; then
        timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
        timeout 20 nvidia-smi
    else
        echo "nvidia-smi: not found"
    fi
    "$PY" -c 'import importlib.util as u; print("installed:", *[m for m in ("pytest", "xdist", "einops", "opt_einsum", "h5py", "tqdm", "matplotlib") if u.find_spec(m)])'
} > "$SUMMARY" 2>&1
run_step 0 "$PY" benchmarks/gpu_paper_check.py --env
sed -n '/^== 1 env/,$p' "$LOG" | tail -n +2 >> "$SUMMARY"

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
    # 2 GPU tests: every kernel variant the later steps launch ---------------------------------
    XDIST=()
    if "$PY" -c 'import xdist' 2> /dev/null; then XDIST=(-n 8); fi
    mkdir -p "$OUT/tests"
    run_step 1 "$PY" -m pytest tests/test_triton_attention_gpu.py -v -ra -p no:cacheprovider -p benchmarks.sigint \
        --junitxml "$OUT/tests/junit.xml" ${XDIST[@]+"${XDIST[@]}"}
    # 3 paper shape check -------------------------------------------------------------------
    run_step 2 "$PY" benchmarks/gpu_paper_check.py
    # 4 attention benchmark (gated): cases start only if they should end 20 s before the deadline
    run_step 3 "$PY" benchmarks/bench_attention_gpu.py --quick --budget-s $(($(step_time 3) - 20)) --out "$OUT/bench"
    rm -f "$OUT/bench/results.csv"  # the same rows are in results.json
    # 5 CMRAN step: phases start only if they should end 30 s before the deadline ----------------
    run_step 4 "$PY" benchmarks/bench_cmran.py --device cuda --quick --backends sdpa,triton --steps 10 --warmup 3 \
        --budget-s $(($(step_time 4) - 30)) --out "$OUT/cmran"
else
    for step in "${STEPS[@]:1}"; do
        skip_step "$step" "no CUDA GPU (torch.cuda.is_available() is False)"
    done
fi

# limits: at most 8 files, none deeper than $OUT/a/b/file, 16 MiB each ---------------------------
if [ -d "$OUT/cmran" ]; then
    files=$(find "$OUT" -type f | wc -l)
    deep=$(find "$OUT" -mindepth 4 -type f | wc -l)
    if [ "$files" -gt 8 ] || [ "$deep" -gt 0 ]; then
        tar -czf "$OUT/cmran.tar.gz" -C "$OUT" cmran && rm -rf "$OUT/cmran"
        RESULTS+=("note: bench_cmran.py's output packed into cmran.tar.gz to stay within 8 files")
    fi
fi
find "$OUT" -type f -size +16M | while read -r f; do
    tail -c 15000000 "$f" > "$f.tail" && mv "$f.tail" "$f"
    echo "note: $f cut to its last 15 MB" >> "$SUMMARY"
done

{
    echo
    echo "== summary ($((SECONDS - START)) s of ${TOTAL_S} s)"
    printf '%s\n' "${RESULTS[@]}"
} | tee -a "$SUMMARY"
exit $FAILED
