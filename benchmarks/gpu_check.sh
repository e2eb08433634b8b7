#!/usr/bin/env bash
# The GPU check (see benchmarks/gpu_check.py): <= 8 minutes on one GPU; --dry-run checks it on CPU in seconds.
#   bash benchmarks/gpu_check.sh --out benchmarks/results/gpu_check.md
set -euo pipefail
exec python "$(dirname "$0")/gpu_check.py" "$@"
