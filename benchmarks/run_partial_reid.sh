#!/usr/bin/env bash
# Partial-REID: train PGFL-KD on Market-1501, test on Partial-REID; then torchreid's baselines.
#
#   bash benchmarks/run_partial_reid.sh [DATA_ROOT] [KEY VALUE ...]    # or DATA_ROOT=... bash ...
#
# 1. pgflkd train --config configs/partial_reid.yaml data.root "$DATA_ROOT" \
#      train.save_dir log/partial_reid
#    (PGFL-KD; checkpoints, config and results.json in log/partial_reid)
# 2. python benchmarks/compare_baselines.py --root "$DATA_ROOT" --dataset partial_reid
#    (the BNNeck baseline and torchreid's resnet50 / osnet_x1_0 / pcb_p6 on the same data, one
#    evaluator; table printed, JSON in benchmarks/results/compare_baselines_partial_reid.json)
# KEY VALUE overrides after DATA_ROOT go to both (e.g. train.max_epoch 60).
#
# Data (nothing is downloaded): Market-1501 as
#   DATA_ROOT/market1501/{bounding_box_train,query,bounding_box_test} and
#   Partial-REID (Zheng et al. ICCV 2015) as
#   DATA_ROOT/Partial_REID/{partial_body_images,whole_body_images}.
# Keypoints: per-image JSON in DATA_ROOT/<dataset>/external_annotation/
#   pifpaf_keypoints_pifpaf_maskrcnn_filtering/ (KPR's layout), or make them with
#   `pgflkd keypoints --images DIR --output DIR`; without keypoints every image gets an empty pose.
# ImageNet weights: model.pretrained True (the default) needs resnet50-0676ba61.pth (or
#   resnet50-19c8e357.pth) in the torch hub cache ($TORCH_HOME/hub/checkpoints/) or a file/folder
#   in PGFLKD_PRETRAINED_PATH; torchreid's own models load theirs from the hub cache (osnet from
#   Google Drive via gdown): offline without them they fail and are reported as failed.
# A GPU is expected (the config trains with bf16 mixed precision on CUDA).
set -euo pipefail
# shellcheck source=run_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/run_common.sh" "$@"

need_dir "Market-1501" \
  "the link in https://kaiyangzhou.github.io/deep-person-reid/datasets.html (Market-1501-v15.09.15.zip)" \
  market1501 Market-1501-v15.09.15 Market-1501
need_dir "Partial-REID" \
  "its authors (Partial-REID_Dataset; no official mirror; PGFA/HOReID on GitHub link copies)" \
  Partial_REID Partial-REID_Dataset Partial_REID_Dataset PartialREID partial_reid

"${PGFLKD[@]}" train --config configs/partial_reid.yaml \
  data.root "$DATA_ROOT" train.save_dir log/partial_reid "${EXTRA[@]}"

"$PYTHON" benchmarks/compare_baselines.py --root "$DATA_ROOT" --dataset partial_reid \
  --models baseline,resnet50,osnet_x1_0,pcb_p6 --work-dir log/partial_reid_baselines \
  --output benchmarks/results/compare_baselines_partial_reid.json "${EXTRA[@]}"
