#!/usr/bin/env bash
# Mei et al.'s multi-scale ROI ensemble with fields of view placed from the image (body mask, fractions of the body
# box learned from fold 0's training cases: `nnunet25d make-roi-dataset --fold 0`) against the same ensemble on
# oracle crops placed around each case's own label (`--roi-from-label`), the resolution ensemble (the same network
# on nnU-Net's 2d and 3d_fullres data of the whole volumes, `nnunet25d ensemble-cv --largest-component always`)
# and every model alone. Data: the CT body phantom (nnunet_25d.roi.phantom: a body of varying size and place, a
# couch, a tube and a one-slice nodule at body-relative places), 20 cases of 20 x 96 x 96 at 4 x 1 x 1 mm; crops
# resampled to 3 mm slices (the authors'). One PE-attention network per ROI scale, fold 0, SCHEDULE (default
# _5epochs_20iters: nnUNetTrainer25DPEAttention_5epochs_20iters), SEEDS repeats (the plain trainer and its _seedN
# repeats), CPU. Run it alone on the machine. Re-running it with the same WORKDIR keeps what is done (datasets,
# plans, finished trainings) and continues an interrupted training (nnUNetv2_train --c). SCALES (default all three)
# trains and fuses only the scales named, image-placed and oracle; the resolution ensemble only with all three.
# Every seed's ROI models train before any whole-volume model, so an interrupted run has the ROI comparison first.
#
#   bash benchmarks/mei_roi_ensemble.sh WORKDIR [SEEDS] [SCHEDULE] [SCALES]   (SEEDS: repeats, default 2;
#                                                                             SCALES e.g. "small")
set -euo pipefail
workdir=$(realpath -m "${1:?usage: mei_roi_ensemble.sh WORKDIR [SEEDS] [SCHEDULE] [SCALES]}")
seeds=${2:-2}
schedule=${3:-_5epochs_20iters}
read -r -a scales <<< "${4:-small middle large}"
declare -A image_id=([small]=552 [middle]=553 [large]=554) oracle_id=([small]=555 [middle]=556 [large]=557)
source "$(dirname "${BASH_SOURCE[0]}")/nnunet_workdir.sh" "$workdir"
base_trainer=nnUNetTrainer25DPEAttention$schedule
started=$(date +%s)
train() {  # DATASET CONFIGURATION LOG (uses $trainer): train fold 0 unless it finished and validated before
    local folder
    folder=$(ls -d "$nnUNet_results"/Dataset$1_*/"$trainer"__nnUNetPlans__$2/fold_0 2>/dev/null || true)
    [[ -n $folder && -f $folder/validation/summary.json ]] && return
    local start=$(date +%s)
    nnUNetv2_train "$1" "$2" 0 -tr "$trainer" -device cpu --npz --c > "$3"
    echo "$1 $2 $trainer $(( $(date +%s) - start ))" >> "$workdir/train_seconds.txt"
}
plan() {  # DATASET CONFIGURATION... : plan and preprocess unless done before
    local id=$1; shift
    ls "$nnUNet_preprocessed"/Dataset${id}_*/nnUNetPlans.json > /dev/null 2>&1 && return
    nnUNetv2_plan_and_preprocess -d "$id" -c "$@" -np 1 > "$workdir/plan_$id.log"
}
[ -d "$nnUNet_raw/Dataset551_BodyPhantom" ] || python -c "
from nnunet_25d.roi.phantom import write_body_phantom_dataset
write_body_phantom_dataset('$nnUNet_raw', 551, n_train=20, shape=(20, 96, 96), seed=0)"
plan 551 2d 3d_fullres
# image-placed (fold 0's fractions) 552-554, oracle 555-557
for scale_id in small:552:image middle:553:image large:554:image small:555:oracle middle:556:oracle large:557:oracle
do
    IFS=: read -r scale id placement <<< "$scale_id"
    option=(--fold 0)
    [[ $placement == oracle ]] && option=(--roi-from-label)
    ls -d "$nnUNet_raw"/Dataset${id}_* > /dev/null 2>&1 || \
        nnunet25d make-roi-dataset -d 551 --target-id "$id" --scale "$scale" "${option[@]}" > /dev/null
    plan "$id" 2d
done
trainer_of() {  # SEED: the plain trainer for seed 0, its _seedN repeat otherwise
    if (($1 == 0)); then echo "$base_trainer"; else echo "${base_trainer}_seed$1"; fi
}
tag_of() { (($1 == 0)) || echo "_seed$1"; }
# every seed's ROI models first (the image-placed against oracle comparison), then the whole-volume models
for ((seed = 0; seed < seeds; seed++)); do
    trainer=$(trainer_of $seed) tag=$(tag_of $seed)
    image_models=() oracle_models=()
    for scale in "${scales[@]}"; do
        image_models+=("${image_id[$scale]}:$trainer:2d") oracle_models+=("${oracle_id[$scale]}:$trainer:2d")
        for id in "${image_id[$scale]}" "${oracle_id[$scale]}"; do train "$id" 2d "$workdir/train_$id$tag.log"; done
    done
    nnunet25d ensemble-roi -d 551 -f 0 --models "${image_models[@]}" | tee "$workdir/roi_ensemble_image$tag.md"
    nnunet25d ensemble-roi -d 551 -f 0 --models "${oracle_models[@]}" | tee "$workdir/roi_ensemble_oracle$tag.md"
done
((${#scales[@]} == 3)) || seeds=0
for ((seed = 0; seed < seeds; seed++)); do
    trainer=$(trainer_of $seed) tag=$(tag_of $seed)
    for configuration in 2d 3d_fullres; do
        train 551 "$configuration" "$workdir/train_551_$configuration$tag.log"
    done
    nnunet25d ensemble-cv -d 551 -f 0 --largest-component always --models "$trainer:2d" "$trainer:3d_fullres" \
        | tee "$workdir/resolution_ensemble$tag.txt"
done
echo $(( $(date +%s) - started )) > "$workdir/wall_seconds.txt"
