#!/usr/bin/env bash
# One prepared GPU run of avattn's fused kernels; call from the repository root:
#
#     OUT=/some/dir bash scripts/gpu_check.sh
#
# Steps (each under `timeout`, the whole run under GPU_CHECK_TOTAL_S, default 450 s):
#   1 env     nvidia-smi, versions, GPU name, device-to-device copy bandwidth
#   2 tests   tests/test_triton_attention_gpu.py (pytest-xdist -n 8 when installed)
#   3 paper   benchmarks/gpu_paper_check.py: B=4096 bf16 forward and gradients vs the fp32
#             reference beside torch's own bf16 error; registers / spills / shared memory
#   4 bench   benchmarks/bench_attention_gpu.py --quick with its correctness gates, in a budget
#   5 cmran   benchmarks/bench_cmran.py on the GPU (eager, bf16, compile, CUDA graphs)
# Writes at most 8 files under $OUT (no deeper than $OUT/a/b/file, 16 MiB each):
#   summary.txt (environment + one line per step), steps.log (every step's output),
#   bench/results.{md,json}, cmran/* (whatever bench_cmran.py writes; packed into one
#   cmran.tar.gz if that would break the limits).
# Installs nothing (the GPU machine has no network). Without a CUDA GPU (dry run) steps 2-5
# skip with a message and the files are still written. Exit status: 0 when no step failed or
# timed out, 1 otherwise.
set -u
unset TRITON_INTERPRET

OUT=${OUT:-$PWD/gpu_out}
PY=${PYTHON:-python3}
TOTAL_S=${GPU_CHECK_TOTAL_S:-450}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONHASHSEED=0

mkdir -p "$OUT"
rm -rf "$OUT/summary.txt" "$OUT/steps.log" "$OUT/bench" "$OUT/cmran" "$OUT/cmran.tar.gz"
SUMMARY=$OUT/summary.txt
LOG=$OUT/steps.log
: > "$LOG"
RESULTS=()
FAILED=0
START=$SECONDS

left() { echo $((TOTAL_S - (SECONDS - START))); }

# run_step NAME SECONDS CMD...: run CMD under timeout, output to steps.log; record ok / FAILED / timeout.
run_step() {
    local name=$1 secs=$2
    shift 2
    local budget
    budget=$(left)
    if [ "$secs" -gt "$budget" ]; then secs=$budget; fi
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
    if command -v nvidia-smi > /dev/null; then
        timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
        timeout 20 nvidia-smi
    else
        echo "nvidia-smi: not found"
    fi
    "$PY" -c 'import importlib.util as u; print("installed:", *[m for m in ("pytest", "xdist", "einops", "opt_einsum", "h5py", "tqdm", "matplotlib") if u.find_spec(m)])'
} > "$SUMMARY" 2>&1
run_step "1 env" 60 "$PY" benchmarks/gpu_paper_check.py --env
sed -n '/^== 1 env/,$p' "$LOG" | tail -n +2 >> "$SUMMARY"

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
    # 2 GPU tests ---------------------------------------------------------------------------
    XDIST=()
    if "$PY" -c 'import xdist' 2> /dev/null; then XDIST=(-n 8); fi
    run_step "2 tests" 110 "$PY" -m pytest tests/test_triton_attention_gpu.py -q -ra -p no:cacheprovider ${XDIST[@]+"${XDIST[@]}"}
    # 3 paper shape check -------------------------------------------------------------------
    run_step "3 paper" 75 "$PY" benchmarks/gpu_paper_check.py
    # 4 attention benchmark (gated) ---------------------------------------------------------
    run_step "4 bench" 140 "$PY" benchmarks/bench_attention_gpu.py --quick --budget-s 90 --out "$OUT/bench"
    rm -f "$OUT/bench/results.csv"  # the same rows are in results.json
    # 5 CMRAN step --------------------------------------------------------------------------
    run_step "5 cmran" 600 \
        "$PY" benchmarks/bench_cmran.py --device cuda --modes eager,bf16,compile,cudagraphs --backends sdpa,triton --batch 32,256 --steps 10 --warmup 3 --out "$OUT/cmran"
else
    for step in "2 tests" "3 paper" "4 bench" "5 cmran"; do
        skip_step "$step" "no CUDA GPU (torch.cuda.is_available() is False)"
    done
fi

# limits: at most 8 files, none deeper than $OUT/a/b/file, 16 MiB each ---------------------------
if [ -d "$OUT/cmran" ]; then
    files=$(find "$OUT" -type f | wc -l)
    deep=$(find "$OUT" -mindepth 4 -type f | wc -l)
    if [ "$files" -gt 7 ] || [ "$deep" -gt 0 ]; then  # 7: summary.txt is rewritten below
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
