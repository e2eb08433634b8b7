#!/usr/bin/env bash
# The README's CPU-only set-up in a fresh virtualenv: after the whole install, torch must still be a CPU build
# (nnU-Net's dependencies pull torchvision; a torchvision from another source than torch swaps torch for a CUDA one).
# Route 1 (the README's): torch and torchvision from PyTorch's CPU index. Where that index cannot be reached (an
# offline machine with only a CPU torch wheel at hand), route 2: the CPU torch pinned in the same pip command.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install -q)
started=$SECONDS
cpu_index=https://download.pytorch.org/whl/cpu
if curl -sfo /dev/null --max-time 15 "$cpu_index/torch/"; then
    route="torch + torchvision from $cpu_index"
    "${pip[@]}" torch torchvision --index-url "$cpu_index"
    "${pip[@]}" -e ".[test]"
else
    cpu_torch=${CPU_TORCH:-torch==2.13.0+cpu}
    route="offline: $cpu_torch pinned beside the package"
    "${pip[@]}" "$cpu_torch" -e ".[test]"
fi
"$work/venv/bin/python" - "$route" <<'PY'
import sys
import torch
assert torch.version.cuda is None, f"the install replaced the CPU torch: torch {torch.__version__} (CUDA {torch.version.cuda})"
import nnunet_25d.trainers.registry  # every trainer declares
print(f"CPU install kept torch {torch.__version__} (CUDA: {torch.version.cuda}); route: {sys.argv[1]}")
PY
echo "venv size: $(du -sh "$work/venv" | cut -f1), $((SECONDS - started)) s"
