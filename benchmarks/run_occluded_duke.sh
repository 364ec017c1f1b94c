#!/usr/bin/env bash
# Occluded-Duke: train and test PGFL-KD on Occluded-Duke, then torchreid's baselines.
#
#   bash benchmarks/run_occluded_duke.sh [DATA_ROOT] [KEY VALUE ...]    # or DATA_ROOT=... bash ...
#
# 1. pgflkd train --config configs/occluded_duke.yaml data.root "$DATA_ROOT" \
#      train.save_dir log/occluded_duke
#    (PGFL-KD; checkpoints, config and results.json in log/occluded_duke)
# 2. python benchmarks/compare_baselines.py --root "$DATA_ROOT" --dataset occluded_duke
#    (the BNNeck baseline and torchreid's resnet50 / osnet_x1_0 / pcb_p6 on the same data, one
#    evaluator; table printed, JSON in benchmarks/results/compare_baselines_occluded_duke.json)
# KEY VALUE overrides after DATA_ROOT go to both (e.g. train.max_epoch 60).
#
# Data (nothing is downloaded): Occluded-Duke (Miao et al. ICCV 2019; built from
#   DukeMTMC-reID with https://github.com/lightas/Occluded-DukeMTMC-Dataset) as
#   DATA_ROOT/Occluded_Duke/{bounding_box_train,query,bounding_box_test}.
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

need_dir "Occluded-Duke" \
  "https://github.com/lightas/Occluded-DukeMTMC-Dataset (needs DukeMTMC-reID)" \
  Occluded_Duke Occluded-DukeMTMC Occluded_DukeMTMC-reID

"${PGFLKD[@]}" train --config configs/occluded_duke.yaml \
  data.root "$DATA_ROOT" train.save_dir log/occluded_duke "${EXTRA[@]}"

"$PYTHON" benchmarks/compare_baselines.py --root "$DATA_ROOT" --dataset occluded_duke \
  --models baseline,resnet50,osnet_x1_0,pcb_p6 --work-dir log/occluded_duke_baselines \
  --output benchmarks/results/compare_baselines_occluded_duke.json "${EXTRA[@]}"
