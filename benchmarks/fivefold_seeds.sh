#!/usr/bin/env bash
# The five-fold benchmark of the README's table, every model trained twice (issue 22's numbers): the synthetic
# dataset (10 training cases in nnU-Net's 5 folds, 4 test cases), nnU-Net 2d and 3d_fullres against the conv slab
# model and MorphMLP_N, 5 epochs x 20 iterations, on CPU. Run it alone on the machine: its timings are reported.
#
#   bash benchmarks/fivefold_seeds.sh WORKDIR [SEEDS]
#   VARIANTS="nnUNetTrainer:2d nnUNetTrainer25D" bash benchmarks/fivefold_seeds.sh WORKDIR   # another matrix
#
# Alone on 2 CPU cores it takes about 40 minutes per seed (2495 s for one seed at stop 17).
#
# Writes WORKDIR/{raw,preprocessed,results}, the report in WORKDIR/results/Dataset525_Synthetic25D/
# nnunet25d_benchmark/ and the wall time of the whole command in WORKDIR/wall_seconds.txt.
set -euo pipefail
workdir=$(realpath -m "${1:?usage: fivefold_seeds.sh WORKDIR [SEEDS]}")
seeds=${2:-2}
source "$(dirname "${BASH_SOURCE[0]}")/nnunet_workdir.sh" "$workdir"
[ -d "$nnUNet_raw/Dataset525_Synthetic25D" ] || nnunet25d make-dataset --raw "$nnUNet_raw" -d 525
started=$(date +%s)
read -r -a variants <<< "${VARIANTS:-nnUNetTrainer:2d nnUNetTrainer:3d_fullres nnUNetTrainer25D nnUNetTrainer25DMorphMLP_N}"
nnunet25d benchmark -d 525 --schedule 5x20 -device cpu --seeds "$seeds" --variants "${variants[@]}"
echo $(( $(date +%s) - started )) > "$workdir/wall_seconds.txt"
