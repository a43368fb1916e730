#!/usr/bin/env bash
# On a machine with a CUDA GPU and torch, triton, pytest, hypothesis installed (no network needed):
# runs the CUDA test suite, `fastgan verify --device cuda` and `fastgan bench --device cuda`, and
# writes everything (logs, JSON, CSV, PNG) into the folder given as argument.
#
#   bash benchmarks/gpu_run.sh benchmarks/results/h100-2026-11-22
#
# Runs from the source tree (PYTHONPATH), so nothing needs installing.  Set QUICK=1 for a short bench.
set -uo pipefail
out=${1:?usage: gpu_run.sh OUTPUT_DIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$root"
status=0
python -m fastgan info 2>&1 | tee "$out/info.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >"$out/nvidia-smi.csv" 2>&1 || true
# the tests, kernels compiled for real on the GPU (not the interpreter)
python -m pytest -q -x tests -p no:cacheprovider 2>&1 | tee "$out/pytest.log" || status=1
python -m fastgan verify --device cuda 2>&1 | tee "$out/verify.txt" || status=1
python -m fastgan verify --device cpu --backend torch --quick >/dev/null 2>&1 || status=1
quick=${QUICK:+--quick}
python -m fastgan bench --device cuda $quick --json "$out/bench.json" --csv "$out/bench.csv" \
    --plot "$out/bench.png" 2>"$out/bench.progress" | tee "$out/bench.txt" || status=1
echo "exit status $status" | tee "$out/status.txt"
exit $status
