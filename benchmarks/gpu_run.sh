#!/usr/bin/env bash
# The first GPU run, one command.  On a machine with a CUDA GPU and torch, triton, pytest
# installed (no network needed), from the source tree (PYTHONPATH; nothing to install):
#
#   bash benchmarks/gpu_run.sh benchmarks/results/h100-2026-11-24
#
# runs, each step's output in a file under OUT:
#   device.txt, info.txt, nvidia-smi.csv   the device (name, driver, clocks), fastgan info
#   pytest-cuda.log       the CUDA tests (every test id with "cuda", kernels compiled for real)
#   verify-triton.txt     fastgan verify --device cuda --backend triton
#   verify-native.txt     fastgan verify --device cuda --backend native
#   bench.{txt,json,csv,png}   the full fastgan bench --device cuda (QUICK=1: --quick): every op of
#                         the registry (pair, BCE, penalty, relativistic, divergences, feature
#                         matching, the pair losses on HiFi-GAN's 8 score lists)
#   penalty-step.md       benchmarks/penalty_step.py --device cuda
#   multi-disc.md         benchmarks/multi_disc.py --device cuda: the list losses and feature
#                         matching over HiFi-GAN's and pix2pixHD's discriminators (multi-tensor kernels)
#   cuda-graph.{json,md}  benchmarks/cuda_graph_step.py: a D step captured in a CUDA graph
#   bandwidth-model.md    the model's predictions the bench timings are read against
#   commands.txt          every command, in order; status.txt the exit status
#
# DRY_RUN=1: no GPU needed.  Prints every command, skips the GPU steps (saying why) and
# checks every python entry point starts (`--help`), so the script keeps working as the
# code changes (tests/test_gpu_run.py).  PYTHON picks the interpreter (default python).
# Exit status 1 if a step fails or an entry point is broken.
set -uo pipefail
out=${1:?usage: gpu_run.sh OUTPUT_DIR   (DRY_RUN=1 for a dry run)}
dry=${DRY_RUN:-0}
py=${PYTHON:-python}
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TRITON_DEFAULT_FP_FUSION=${TRITON_DEFAULT_FP_FUSION:-1}
cd "$root"
status=0
: >"$out/commands.txt"

if [ "$dry" != 1 ]; then
    if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "no CUDA device visible to torch: nothing to measure (DRY_RUN=1 checks the script without one)"
        echo "exit status 1 (no CUDA device)" >"$out/status.txt"
        exit 1
    fi
    device=$("$py" -c "import torch; print(torch.cuda.get_device_name())")
else
    device="(dry run: no GPU)"
fi
echo "$device" | tee "$out/device.txt"

# step NAME GPU(0/1) LOGFILE HELP-COMMAND -- COMMAND...
#   HELP-COMMAND (a string, run with bash -c) must succeed: the entry point starts.
#   GPU=1 steps are skipped in a dry run; their command is printed.
step() {
    local name=$1 gpu=$2 log=$3 help=$4
    shift 5
    printf '[%s] %s\n' "$name" "$*" >>"$out/commands.txt"
    if [ -n "$help" ] && ! bash -c "$help" >"$out/$name.help.txt" 2>&1; then
        echo "[$name] ENTRY POINT BROKEN: '$help' failed:"
        tail -5 "$out/$name.help.txt"
        status=1
        return
    fi
    if [ "$dry" = 1 ] && [ "$gpu" = 1 ]; then
        echo "[$name] skipped (dry run, needs a CUDA GPU): $*"
        return
    fi
    echo "[$name] $*"
    "$@" >"$out/$log" 2>&1
    local rc=$?
    tail -3 "$out/$log"
    if [ $rc -ne 0 ]; then
        echo "[$name] FAILED (exit $rc; $out/$log)"
        status=1
    fi
}

xdist=""
if "$py" -c "import xdist" 2>/dev/null; then xdist="-n ${PYTEST_WORKERS:-4}"; fi
quick=${QUICK:+--quick}

step info 0 info.txt "$py -m fastgan info >/dev/null" -- "$py" -m fastgan info
if [ "$dry" != 1 ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv \
        >"$out/nvidia-smi.csv" 2>&1 || true
fi
# shellcheck disable=SC2086
step pytest-cuda 1 pytest-cuda.log "$py -m pytest --version" -- \
    "$py" -m pytest -q tests -k cuda -p no:cacheprovider $xdist
step verify-triton 1 verify-triton.txt "$py -m fastgan verify --help" -- \
    "$py" -m fastgan verify --device cuda --backend triton
step verify-native 1 verify-native.txt "$py -m fastgan verify --help" -- \
    "$py" -m fastgan verify --device cuda --backend native
# shellcheck disable=SC2086
step bench 1 bench.txt "$py -m fastgan bench --help" -- \
    "$py" -m fastgan bench --device cuda $quick --json "$out/bench.json" --csv "$out/bench.csv" --plot "$out/bench.png"
step penalty-step 1 penalty-step.txt "$py benchmarks/penalty_step.py --help" -- \
    "$py" benchmarks/penalty_step.py --device cuda --markdown "$out/penalty-step.md"
step multi-disc 1 multi-disc.txt "$py benchmarks/multi_disc.py --help" -- \
    "$py" benchmarks/multi_disc.py --device cuda --markdown "$out/multi-disc.md"
step cuda-graph 1 cuda-graph.txt "$py benchmarks/cuda_graph_step.py --help" -- \
    "$py" benchmarks/cuda_graph_step.py --json "$out/cuda-graph.json" --markdown "$out/cuda-graph.md"
step bandwidth-model 0 bandwidth-model.txt "$py -m fastgan.tools.bandwidth --help" -- \
    "$py" -m fastgan.tools.bandwidth --markdown "$out/bandwidth-model.md"

echo "device: $device; exit status $status" | tee "$out/status.txt"
exit $status
