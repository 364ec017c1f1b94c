#!/usr/bin/env bash
# Occluded-REID: train PGFL-KD on Market-1501, test on Occluded-REID; then torchreid's baselines.
#
#   bash benchmarks/run_occluded_reid.sh [DATA_ROOT] [KEY VALUE ...]    # or DATA_ROOT=... bash ...
#
# 1. pgflkd train --config configs/occluded_reid.yaml data.root "$DATA_ROOT" \
#      train.save_dir log/occluded_reid
#    (PGFL-KD; checkpoints, config and results.json in log/occluded_reid)
# 2. python benchmarks/compare_baselines.py --root "$DATA_ROOT" --dataset occluded_reid
#    (the BNNeck baseline and torchreid's resnet50 / osnet_x1_0 / pcb_p6 on the same data, one
#    evaluator; table printed, JSON in benchmarks/results/compare_baselines_occluded_reid.json)
# KEY VALUE overrides after DATA_ROOT go to both (e.g. train.max_epoch 60).
#
# Data (nothing is downloaded): Market-1501 as
#   DATA_ROOT/market1501/{bounding_box_train,query,bounding_box_test} and
#   Occluded-REID (Zhuo et al. ICME 2018) as
#   DATA_ROOT/Occluded_REID/{occluded_body_images,whole_body_images}.
# Keypoints: per-image JSON in DATA_ROOT/<dataset>/external_annotation/
#   pifpaf_keypoints_pifpaf_maskrcnn_filtering/ (KPR's layout), or make them with
#   `pgflkd keypoints --images DIR --output DIR`; without keypoints every image gets an empty pose.
# ImageNet weights: model.pretrained True (the default) needs resnet50-0676ba61.pth (or
#   resnet50-19c8e357.pth) in the torch hub cache ($TORCH_HOME/hub/checkpoints/) or a file/folder
#   in PGFLKD_PRETRAINED_PATH; torchreid's own models load theirs from the hub cache (osnet from
#   Google Drive via gdown): offline without them they fail and are reported as failed.
# A GPU is expected (the config trains with bf16 mixed precision on CUDA).
set -euo pipefail

DATA_ROOT="${1:-${DATA_ROOT:-reid-data}}"
if [[ $# -gt 0 ]]; then shift; fi  # the rest: KEY VALUE overrides for both commands
if [[ ! -d "$DATA_ROOT" ]]; then
  echo "error: data root $DATA_ROOT does not exist (pass it as the first argument or DATA_ROOT)" >&2
  exit 1
fi
DATA_ROOT="$(cd "$DATA_ROOT" && pwd)"  # absolute: we run from the repository root
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if command -v pgflkd >/dev/null 2>&1; then
  PGFLKD=(pgflkd)
else
  PGFLKD=("$PYTHON" -m torchreid_pgflkd.cli.main)
fi

# need_dir WHAT URL CANDIDATE...: stop with a clear message unless one candidate folder exists.
need_dir() {
  local what="$1" url="$2"
  shift 2
  local candidate
  for candidate in "$@"; do
    [[ -d "$DATA_ROOT/$candidate" ]] && return 0
  done
  {
    echo "error: $what not found under DATA_ROOT=$DATA_ROOT"
    echo "  looked for: $(for c in "$@"; do printf '%s/%s ' "$DATA_ROOT" "$c"; done)"
    echo "  download it from $url and unpack it as $DATA_ROOT/$1"
    echo "  (or pass another root: $0 /path/to/reid-data, or DATA_ROOT=/path/to/reid-data)"
  } >&2
  exit 1
}

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "warning: no GPU found (nvidia-smi missing); training on the CPU will take days" >&2
fi

need_dir "Market-1501" \
  "the link in https://kaiyangzhou.github.io/deep-person-reid/datasets.html (Market-1501-v15.09.15.zip)" \
  market1501 Market-1501-v15.09.15 Market-1501
need_dir "Occluded-REID" \
  "its authors (no official mirror; PGFA/HOReID on GitHub link copies)" \
  Occluded_REID OccludedREID Occluded-ReID

"${PGFLKD[@]}" train --config configs/occluded_reid.yaml \
  data.root "$DATA_ROOT" train.save_dir log/occluded_reid "$@"

"$PYTHON" benchmarks/compare_baselines.py --root "$DATA_ROOT" --dataset occluded_reid \
  --models baseline,resnet50,osnet_x1_0,pcb_p6 --work-dir log/occluded_reid_baselines \
  --output benchmarks/results/compare_baselines_occluded_reid.json "$@"
