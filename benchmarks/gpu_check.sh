#!/usr/bin/env bash
# The first GPU: run every CUDA path of the package once and write its figures.
#
#   benchmarks/gpu_check.sh [OUTPUT]        # default OUTPUT: benchmarks/results/gpu_check.json
#   GPU_CHECK_DRY_RUN=1 benchmarks/gpu_check.sh [OUTPUT]   # the same steps, tiny, on the CPU
#                                                          # (default OUTPUT /tmp/gpu_check_dry_run.json)
#
# Runs each part of benchmarks/gpu_check.py (bf16 and fp16-with-scaler training steps, the
# deployed model's throughput, PGFL-KD vs the BNNeck baseline vs torchreid's resnet50, torchrun
# with NCCL, evaluate_features at the 500k size, a short `pgflkd run --preset gpu`) in its own
# process under a `timeout`, then merges them into OUTPUT and prints a summary. A failed or
# timed-out part is recorded with its error and makes the exit code 1. The limits add up to
# 7.5 minutes; on an H200 the parts took far less. Without a CUDA device it writes nothing and
# says so (exit code 3): the GPU figures remain to be measured.
#
# It installs the project first only when `import torchreid_pgflkd` fails: the README's line
# (pip install -e ".[dev]" -c constraints.txt) in a fresh environment, and, as the README says
# for an environment whose torch / torchvision pair already works (the GPU machines' image),
# without the constraints so that pair is kept. On a machine without network access, put the
# missing wheels in .whl/ (torchreid==0.2.5, yacs, faiss-cpu, gdown, ...): they are then
# installed from there only. PYTHON selects the interpreter (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
START=$SECONDS

if ! "$PY" -c "import torchreid_pgflkd" 2>/dev/null; then
    if "$PY" -c "import torch, torchvision" 2>/dev/null; then
        install=(-m pip install -e ".[dev]")
    else
        install=(-m pip install -e ".[dev]" -c constraints.txt)
    fi
    if [[ -d .whl ]]; then
        install+=(--no-index --find-links .whl)
    fi
    echo "gpu_check: installing the project: $PY ${install[*]}"
    if ! "$PY" "${install[@]}"; then
        echo "gpu_check: the install failed; without network access, put the missing wheels" \
            "in .whl/ (see the top of this script)" >&2
        exit 2
    fi
fi

if [[ ${GPU_CHECK_DRY_RUN:-0} == 1 ]]; then
    DEVICE=cpu SIZE=tiny OUTPUT=${1:-/tmp/gpu_check_dry_run.json}
    echo "gpu_check: dry run (tiny, CPU) -> $OUTPUT"
elif ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device here, so the GPU figures remain to be measured;" \
        "benchmarks/results/gpu_check.json was not written (GPU_CHECK_DRY_RUN=1 runs the" \
        "tiny CPU version of every part)." >&2
    exit 3
else
    DEVICE=cuda SIZE=full OUTPUT=${1:-benchmarks/results/gpu_check.json}
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PARTS=(amp_train_step deployed_throughput train_speed ddp evaluate_500k pgflkd_run)
declare -A LIMIT=(
    [amp_train_step]=70 [deployed_throughput]=40 [train_speed]=70
    [ddp]=70 [evaluate_500k]=90 [pgflkd_run]=110
)
EXITS=()
for part in "${PARTS[@]}"; do
    echo "== $part (limit ${LIMIT[$part]} s)"
    timeout --kill-after=5 "${LIMIT[$part]}" "$PY" benchmarks/gpu_check.py --part "$part" \
        --device "$DEVICE" --size "$SIZE" --work-dir "$WORK/data" --output "$WORK/$part.json"
    EXITS+=(--part-exit "$part:$?:${LIMIT[$part]}")
done

echo "== summary"
"$PY" benchmarks/gpu_check.py --merge "$WORK"/*.json "${EXITS[@]}" \
    --device "$DEVICE" --size "$SIZE" --output "$OUTPUT"
rc=$?
echo "gpu_check: $((SECONDS - START)) s in all, exit code $rc"
exit $rc
