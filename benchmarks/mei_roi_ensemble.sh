#!/usr/bin/env bash
# Issue 23's Mei numbers: the multi-scale ensemble as the paper builds it (one PE-attention network per ROI scale —
# small / middle / large fields of view around the foreground, resampled to 3 mm slices — mapped back, fused,
# largest component kept: `nnunet25d ensemble-roi`) against the resolution reading (the same network trained on
# nnU-Net's 2d and 3d_fullres data of the whole volumes, fused by `nnunet25d ensemble-cv --largest-component
# always`). Synthetic data with one tube and one nodule per case in a 20 x 96 x 96 volume (so that an ROI is a real
# crop), fold 0, 5 epochs x 20 iterations, two seeds (the plain trainer and its _seed1 repeat), CPU. Run it alone
# on the machine. Re-running it with the same WORKDIR keeps what is done (plans, finished trainings) and
# continues an interrupted training (nnUNetv2_train --c).
#
#   bash benchmarks/mei_roi_ensemble.sh WORKDIR [SEEDS]     (SEEDS: repeats, default 2)
set -euo pipefail
workdir=$(realpath -m "${1:?usage: mei_roi_ensemble.sh WORKDIR [SEEDS]}")
seeds=${2:-2}
mkdir -p "$workdir"/{raw,preprocessed,results}
export nnUNet_raw="$workdir/raw" nnUNet_preprocessed="$workdir/preprocessed" nnUNet_results="$workdir/results"
export nnUNet_def_n_proc=1
eval "$(nnunet25d env)"
base_trainer=nnUNetTrainer25DPEAttention_5epochs_20iters
started=$(date +%s)
train() {  # DATASET CONFIGURATION LOG (uses $trainer): train fold 0 unless it finished and validated before
    local folder
    folder=$(ls -d "$nnUNet_results"/Dataset$1_*/"$trainer"__nnUNetPlans__$2/fold_0 2>/dev/null || true)
    [[ -n $folder && -f $folder/validation/summary.json ]] && return
    nnUNetv2_train "$1" "$2" 0 -tr "$trainer" -device cpu --npz --c > "$3"
}
plan() {  # DATASET CONFIGURATION... : plan and preprocess unless done before
    local id=$1; shift
    ls "$nnUNet_preprocessed"/Dataset${id}_*/nnUNetPlans.json > /dev/null 2>&1 && return
    nnUNetv2_plan_and_preprocess -d "$id" -c "$@" -np 1 > "$workdir/plan_$id.log"
}
[ -d "$nnUNet_raw/Dataset541_Synthetic25D" ] || nnunet25d make-dataset --raw "$nnUNet_raw" -d 541 --objects-per-class 1 \
    --shape 20 96 96 --n-test 0
plan 541 2d 3d_fullres
for scale_id in small:542 middle:543 large:544; do
    scale=${scale_id%%:*} id=${scale_id##*:}
    ls -d "$nnUNet_raw"/Dataset${id}_* > /dev/null 2>&1 || nnunet25d make-roi-dataset -d 541 --target-id "$id" --scale "$scale"
    plan "$id" 2d
done
for ((seed = 0; seed < seeds; seed++)); do
    trainer=$base_trainer tag=""
    ((seed == 0)) || trainer=${base_trainer}_seed$seed tag=_seed$seed
    for id in 542 543 544; do train "$id" 2d "$workdir/train_$id$tag.log"; done
    for configuration in 2d 3d_fullres; do
        train 541 "$configuration" "$workdir/train_541_$configuration$tag.log"
    done
    nnunet25d ensemble-roi -d 541 -f 0 --models "542:$trainer:2d" "543:$trainer:2d" "544:$trainer:2d" \
        | tee "$workdir/roi_ensemble$tag.md"
    nnunet25d ensemble-cv -d 541 -f 0 --largest-component always --models "$trainer:2d" "$trainer:3d_fullres" \
        | tee "$workdir/resolution_ensemble$tag.txt"
done
echo $(( $(date +%s) - started )) > "$workdir/wall_seconds.txt"
