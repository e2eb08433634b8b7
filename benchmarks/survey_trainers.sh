#!/usr/bin/env bash
# Issue 23's numbers: the survey trainers rebuilt after their papers against the conv slab model and nnU-Net 2d —
# Ψ-Net (nnUNetTrainer25DPsiNet) vs the border-weighted cross-entropy (nnUNetTrainer25D_BorderLoss) vs
# nnUNetTrainer25D, and RIU-Net (nnUNetTrainer25DRIUNet) vs nnUNetTrainer25D: fold 0, every model trained twice
# (--seeds 2), 5 epochs x 20 iterations, on the synthetic dataset with uniform 4 mm slices (Dataset531) and with
# mixed 2 / 5 mm slices (Dataset532). Dice per class (fold 0's validation cases and the 4 test cases), cost per
# epoch and per case against 2d, parameters: each dataset's report in
# WORKDIR/results/Dataset53X_*/nnunet25d_benchmark/. Run it alone on the machine: its timings are reported.
#
#   bash benchmarks/survey_trainers.sh WORKDIR
set -euo pipefail
workdir=$(realpath -m "${1:?usage: survey_trainers.sh WORKDIR}")
source "$(dirname "${BASH_SOURCE[0]}")/nnunet_workdir.sh" "$workdir"
[ -d "$nnUNet_raw/Dataset531_Synthetic25D" ] || nnunet25d make-dataset --raw "$nnUNet_raw" -d 531
[ -d "$nnUNet_raw/Dataset532_Synthetic25D" ] || nnunet25d make-dataset --raw "$nnUNet_raw" -d 532 --z-spacings 2 5
variants=(nnUNetTrainer:2d nnUNetTrainer25D nnUNetTrainer25D_BorderLoss nnUNetTrainer25DPsiNet nnUNetTrainer25DRIUNet)
for dataset in 531 532; do
    started=$(date +%s)
    nnunet25d benchmark -d "$dataset" --folds 0 --schedule 5x20 -device cpu --seeds 2 --no-find-best \
        --variants "${variants[@]}" --baselines nnUNetTrainer:2d nnUNetTrainer25D
    echo $(( $(date +%s) - started )) > "$workdir/wall_seconds_$dataset.txt"
done
