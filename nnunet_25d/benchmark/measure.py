"""Run ``nnUNetv2_train`` in this process and record its peak memory, wall time, the most cores other work used
while it ran and the machine next to the fold's checkpoints.

``python -m nnunet_25d.benchmark.measure --record FILE -- nnUNetv2_train ARGS`` calls nnU-Net's own entry point
with ARGS, so the training is exactly that command's.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

from nnunet_25d.report.load import CORES_KEY, OTHER_CPU_KEY, OtherCpuSampler
from nnunet_25d.report.machine import this_machine


def peak_memory() -> dict[str, float]:
    """Peak host memory of this process (MiB) and, on CUDA, peak GPU memory allocated by torch (MiB)."""
    import torch

    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    record = {"peak_host_memory_mib": max_rss / (2 ** 20 if sys.platform == "darwin" else 1024)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        record["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", required=True, type=Path, help="JSON file to write")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- nnUNetv2_train ARGS")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command[:1] != ["nnUNetv2_train"]:
        parser.error(f"expected `-- nnUNetv2_train ARGS`, got {command}")
    from nnunetv2.run.run_training import run_training_entry

    sys.argv = command
    started = time.perf_counter()
    with OtherCpuSampler() as other:
        run_training_entry()
    record = {"commands": [command], "wall_seconds": time.perf_counter() - started, **peak_memory(),
              CORES_KEY: os.cpu_count(), "machine": this_machine(cuda=_uses_cuda(command)).as_dict()}
    if not math.isnan(other.peak):
        record[OTHER_CPU_KEY] = other.peak
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(merged(record, args.record), indent=2))


def _uses_cuda(command: list[str]) -> bool:
    """nnUNetv2_train's -device (default cuda)."""
    return "-device" not in command[:-1] or command[command.index("-device") + 1] == "cuda"


def merged(record: dict, path: Path) -> dict:
    """A resumed or re-validated fold keeps one record: peaks (memory, other work's CPU) are the maximum, wall time
    the sum, of all its runs; cores and machine are the latest run's."""
    if not path.exists():
        return record
    previous = json.loads(path.read_text())
    combined = {**previous, **record, "commands": previous.get("commands", []) + record["commands"],
                "wall_seconds": previous.get("wall_seconds", 0.0) + record["wall_seconds"]}
    for key in ("peak_host_memory_mib", "peak_gpu_memory_mib", OTHER_CPU_KEY):
        values = [r[key] for r in (previous, record) if key in r]
        if values:
            combined[key] = max(values)
    return combined


if __name__ == "__main__":
    main()
