#!/usr/bin/env bash
# The README's set-up on a CPU-only machine counts as working when it trains and predicts. In a fresh virtualenv:
#   route "PyTorch CPU index" where that index answers: torch and torchvision from it (torch must stay a CPU build);
#   route "PyPI pair" otherwise: torch==2.14.1 torchvision==0.29.1 from PyPI, one source (a CUDA build; runs on CPU).
# Then, in that venv, on a tiny generated dataset: the pre-flight import check (what nnU-Net's trainer lookup imports),
# `nnUNetv2_train … -device cpu` of nnU-Net's nnUNetTrainer and of nnUNetTrainer25D (2 epochs x 5 iterations), and
# `nnunet25d predict` of one case. Any failure fails the script.
#   CHECK_PYTHON=python3   skip the install, check an existing environment
#   CHECK_TRAINERS="…"     the trainers to train (default: nnUNetTrainer and nnUNetTrainer25D, 2 epochs x 5 iterations)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$SECONDS
if [[ -n "${CHECK_PYTHON:-}" ]]; then
    python=$CHECK_PYTHON
    route="existing environment ($python)"
else
    python3 -m venv "$work/venv"
    python="$work/venv/bin/python"
    pip=("$python" -m pip install -q)
    cpu_index=https://download.pytorch.org/whl/cpu
    if curl -sfo /dev/null --max-time 15 "$cpu_index/torch/"; then
        route="cpu-index (torch and torchvision from PyTorch's CPU index)"
        "${pip[@]}" torch torchvision --index-url "$cpu_index"
    else
        route="pypi-pair (torch==2.14.1 torchvision==0.29.1; PyTorch's index unreachable)"
        "${pip[@]}" torch==2.14.1 torchvision==0.29.1
    fi
    "${pip[@]}" -e ".[test]"
    echo "install ($route): $((SECONDS - started)) s, venv $(du -sh "$work/venv" | cut -f1)"
fi
bin=$(dirname "$("$python" -c 'import sys; print(sys.executable)')")
"$python" - "$route" <<'PY'
import sys
import torch
import torchvision
from nnunet_25d.benchmark.preflight import check_trainer_lookup_imports
check_trainer_lookup_imports()
if sys.argv[1].startswith("cpu-index"):
    assert torch.version.cuda is None, f"the install replaced the CPU torch: {torch.__version__} (CUDA {torch.version.cuda})"
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), torchvision {torchvision.__version__}; route: {sys.argv[1]}")
PY
trained=$SECONDS
export nnUNet_raw="$work/raw" nnUNet_preprocessed="$work/preprocessed" nnUNet_results="$work/results"
export nnUNet_def_n_proc=1 nnUNet_extTrainer="$("$python" -c 'from nnunet_25d import TRAINER_FOLDER; print(TRAINER_FOLDER)')"
PATH="$bin:$PATH"
nnunet25d make-dataset --raw "$nnUNet_raw" -d 990 --n-train 5 --n-test 1 --shape 8 32 32 --objects-per-class 1 >/dev/null
nnUNetv2_plan_and_preprocess -d 990 -c 2d -np 1 >"$work/plan.log" 2>&1 || { tail -5 "$work/plan.log"; exit 1; }
for trainer in ${CHECK_TRAINERS:-nnUNetTrainer_2epochs_5iters nnUNetTrainer25D_2epochs_5iters}; do
    if ! nnUNet_n_proc_DA=0 nnUNetv2_train 990 2d 0 -tr "$trainer" -device cpu >"$work/train.log" 2>&1; then
        echo "check_cpu_install: nnUNetv2_train of $trainer failed:"; tail -5 "$work/train.log"; exit 1
    fi
    nnunet25d predict -i "$nnUNet_raw/Dataset990_Synthetic25D/imagesTs" -o "$work/pred_$trainer" -d 990 -c 2d -f 0 \
        -tr "$trainer" -device cpu -npp 1 -nps 1 >"$work/predict.log" 2>&1 || { tail -5 "$work/predict.log"; exit 1; }
    ls "$work/pred_$trainer"/*.nii.gz >/dev/null
done
echo "trained and predicted (${CHECK_TRAINERS:-nnUNetTrainer_2epochs_5iters nnUNetTrainer25D_2epochs_5iters}): $((SECONDS - trained)) s"
