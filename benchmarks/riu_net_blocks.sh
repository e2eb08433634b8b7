#!/usr/bin/env bash
# RIU-Net as its authors build it (nnUNetTrainer25DRIUNet: net/ince5.py's network) against its factorised ablation
# (nnUNetTrainer25DRIUNet_Factorised: nnU-Net's planned topology, InceptionV3-style blocks) and the planned 2D U-Net
# on the same 3-slice slab (nnUNetTrainer25D_3slices) and nnU-Net 2d: fold 0, every model trained SEEDS times,
# SCHEDULE (default 5x20: 5 epochs x 20 iterations), on the synthetic dataset (Dataset561) and on the MNI152 anatomy
# dataset (Dataset562, needs nilearn). Dice per class (fold 0's validation cases and the test cases), s/epoch and
# parameters: each dataset's report in WORKDIR/results/Dataset56X_*/nnunet25d_benchmark/. Parameters and FLOPs at
# nnU-Net's plans for CT: benchmarks/survey_networks.py. Run it alone on the machine: its timings are reported.
#
#   bash benchmarks/riu_net_blocks.sh WORKDIR [SEEDS] [SCHEDULE] [DATASETS]   (DATASETS default "561 562")
set -euo pipefail
workdir=$(realpath -m "${1:?usage: riu_net_blocks.sh WORKDIR [SEEDS] [SCHEDULE] [DATASETS]}")
seeds=${2:-2}
schedule=${3:-5x20}
datasets=${4:-561 562}
source "$(dirname "${BASH_SOURCE[0]}")/nnunet_workdir.sh" "$workdir"
[ -d "$nnUNet_raw/Dataset561_Synthetic25D" ] || nnunet25d make-dataset --raw "$nnUNet_raw" -d 561
[ -d "$nnUNet_raw/Dataset562_Anatomy25D" ] || nnunet25d make-dataset --raw "$nnUNet_raw" -d 562 --kind anatomy
variants=(nnUNetTrainer:2d nnUNetTrainer25D_3slices nnUNetTrainer25DRIUNet nnUNetTrainer25DRIUNet_Factorised)
for dataset in $datasets; do
    ls "$nnUNet_preprocessed"/Dataset${dataset}_*/nnUNetPlans.json > /dev/null 2>&1 || \
        nnUNetv2_plan_and_preprocess -d "$dataset" -c 2d -np 1 > "$workdir/plan_$dataset.log"
    started=$(date +%s)
    nnunet25d benchmark -d "$dataset" --folds 0 --schedule "$schedule" -device cpu --seeds "$seeds" --no-find-best \
        --variants "${variants[@]}" --baselines nnUNetTrainer:2d nnUNetTrainer25D_3slices
    echo $(( $(date +%s) - started )) > "$workdir/wall_seconds_$dataset.txt"
done
