#!/usr/bin/env bash
# Issue 21's numbers: per-slice batches and the self-configured nnUNetTrainer25D against nnU-Net 2d and 3d_fullres,
# the earlier slab model (nnUNetTrainer25D_DeepPatches: 3 slices on the 2d data, the fewest deepest patches, SGD),
# the optimiser ablation (nnUNetTrainer25D_SGD) and MorphMLP_N; fold 0, 5 epochs x 20 iterations, on CPU:
#   536  synthetic, uniform 4 mm slices, 20 training / 8 test cases of 40 x 48 x 48 (2d batch 40: the earlier
#        design made it 5 patches x 8 supervised slices), every model trained twice (--seeds 2)
#   537  the same with mixed 2 / 5 mm slices (the self-configuration picks z-resampled data), one seed
#   538  the MNI152 anatomy (grey / white matter), 9 mm slices, 3 mm in-plane (10 training / 4 test cases), one seed
# Run it alone on the machine: its timings are reported. Each dataset's report lands in
# WORKDIR/results/DatasetXXX_*/nnunet25d_benchmark/, its wall time in WORKDIR/wall_seconds_XXX.txt.
#
#   bash benchmarks/never_below_2d.sh WORKDIR [DATASET ...]     # default: 536 537 538
set -euo pipefail
workdir=$(realpath -m "${1:?usage: never_below_2d.sh WORKDIR [DATASET ...]}")
shift
datasets=("${@:-536 537 538}")
read -r -a datasets <<< "${datasets[*]}"
source "$(dirname "${BASH_SOURCE[0]}")/nnunet_workdir.sh" "$workdir"
make() {  # dataset id -> its raw dataset, written once
    case $1 in
        536) nnunet25d make-dataset --raw "$nnUNet_raw" -d 536 --n-train 20 --n-test 8 --shape 40 48 48 ;;
        537) nnunet25d make-dataset --raw "$nnUNet_raw" -d 537 --n-train 20 --n-test 8 --shape 40 48 48 \
                 --z-spacings 2 5 ;;
        538) nnunet25d make-dataset --raw "$nnUNet_raw" -d 538 --kind anatomy --in-plane-mm 3 --z-spacings 9 ;;
    esac
}
for dataset in "${datasets[@]}"; do
    ls -d "$nnUNet_raw"/Dataset"$dataset"_* > /dev/null 2>&1 || make "$dataset"
    seeds=1
    variants=(nnUNetTrainer:2d nnUNetTrainer:3d_fullres nnUNetTrainer25D_DeepPatches nnUNetTrainer25D
              nnUNetTrainer25D_SGD nnUNetTrainer25DMorphMLP_N)
    [ "$dataset" = 536 ] && seeds=2
    # the anatomy's 2d batch of 8 is 8 one-slice patches in the earlier design too: DeepPatches = _SGD there
    [ "$dataset" = 538 ] && variants=(nnUNetTrainer:2d nnUNetTrainer:3d_fullres nnUNetTrainer25D nnUNetTrainer25D_SGD
                                      nnUNetTrainer25DMorphMLP_N)
    started=$(date +%s)
    nnunet25d benchmark -d "$dataset" --folds 0 --schedule 5x20 -device cpu --seeds "$seeds" --no-find-best \
        --variants "${variants[@]}"
    echo $(( $(date +%s) - started )) > "$workdir/wall_seconds_$dataset.txt"
done
