"""Run ``nnUNetv2_train`` in this process and record its peak memory, wall time, the most cores other work used
while it ran and the machine next to the fold's checkpoints.

``python -m nnunet_25d.benchmark.measure --record FILE -- nnUNetv2_train ARGS`` calls nnU-Net's own entry point
with ARGS, so the training is exactly that command's.

The record holds every run of the fold (an interrupted one, its ``--c`` resumption, a ``--val``): wall time summed,
peaks the maximum. It is written when the run starts and refreshed every ``--every`` seconds while it runs, so a run
killed outright (SIGKILL, a node lost) keeps all but its last seconds; SIGTERM (SLURM's preemption, ``kill``) and
Ctrl-C write it before the process ends. Each write replaces the file whole (a temporary file renamed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

from nnunet_25d.report.load import CORES_KEY, OTHER_CPU_KEY, OtherCpuSampler
from nnunet_25d.report.machine import this_machine

RUNS_KEY = "runs"  # one entry per run: its command, wall seconds and how it ended
RECORD_EVERY_S = 30.0


def peak_memory() -> dict[str, float]:
    """Peak host memory of this process (MiB) and, on CUDA, peak GPU memory allocated by torch (MiB)."""
    import torch

    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    record = {"peak_host_memory_mib": max_rss / (2 ** 20 if sys.platform == "darwin" else 1024)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        record["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return record


def read_record(path: Path) -> dict | None:
    """The fold's record so far; None if there is none (or it cannot be read: it is then started afresh)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_record(path: Path, record: dict) -> None:
    """Replace the record whole: a temporary file beside it, renamed (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial_{os.getpid()}_{path.name}")
    partial.write_text(json.dumps(record, indent=2))
    os.replace(partial, path)


class Recorder:
    """This run's record, merged with the fold's earlier runs (read once, at the start)."""

    def __init__(self, path: Path, command: list[str]):
        self.path, self.command = path, command
        self.previous = read_record(path)
        self.started, self.started_at = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S")
        self.machine = this_machine(cuda=_uses_cuda(command)).as_dict()
        self.other_peak = float("nan")
        self.lock = threading.Lock()
        self.ended = False

    def record(self, status: str) -> dict:
        seconds = time.perf_counter() - self.started
        record = {"commands": [self.command], "wall_seconds": seconds, **peak_memory(), CORES_KEY: os.cpu_count(),
                  "machine": self.machine,
                  RUNS_KEY: [{"command": self.command, "started": self.started_at, "wall_seconds": seconds,
                              "status": status}]}
        if not math.isnan(self.other_peak):
            record[OTHER_CPU_KEY] = self.other_peak
        return merged_with(record, self.previous)

    def write(self, status: str) -> None:
        with self.lock:
            if self.ended:  # a refresh racing the final write does not undo it
                return
            write_record(self.path, self.record(status))
            self.ended = status != "running"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--every", type=float, default=RECORD_EVERY_S, help="seconds between writes while it runs")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- nnUNetv2_train ARGS")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command[:1] != ["nnUNetv2_train"]:
        parser.error(f"expected `-- nnUNetv2_train ARGS`, got {command}")
    signal.signal(signal.SIGTERM, _terminated)  # preemption: end through the finally below, recorded
    recorder = Recorder(args.record, command)  # from here on the run counts (nnU-Net's import included)
    stop = threading.Event()
    status, other = "interrupted", OtherCpuSampler()
    try:  # from the first write on: a signal that lands as the record appears still reaches the finally
        recorder.write("running")
        threading.Thread(target=_refresh, args=(recorder, stop, args.every), daemon=True).start()
        sys.argv = command
        from nnunetv2.run.run_training import run_training_entry

        with other:
            run_training_entry()
        status = "finished"
    except SystemExit as exit_:
        status = "finished" if exit_.code in (None, 0) else "failed"  # or "interrupted": see the finally
        raise
    except KeyboardInterrupt:
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        stop.set()
        preempted = bool(_TERMINATED_BY) and status != "finished"
        recorder.other_peak = getattr(other, "peak", float("nan"))
        recorder.write("interrupted" if preempted else status)
        if preempted:
            # torch's optional-import guards can swallow the SystemExit that _terminated raises, and nnU-Net then
            # fails on its own: the run still ends as the preemption it was
            raise SystemExit(128 + _TERMINATED_BY[0])


_TERMINATED_BY: list[int] = []  # the signal that ended the run, even where a library caught its SystemExit


def _terminated(signum, frame) -> None:
    _TERMINATED_BY.append(signum)
    raise SystemExit(128 + signum)


def _refresh(recorder: Recorder, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        try:
            recorder.write("running")
        except OSError:
            pass  # a full disk: the record is refreshed again later, and written at the end


def _uses_cuda(command: list[str]) -> bool:
    """nnUNetv2_train's -device (default cuda)."""
    return "-device" not in command[:-1] or command[command.index("-device") + 1] == "cuda"


def merged_with(record: dict, previous: dict | None) -> dict:
    """A resumed or re-validated fold keeps one record: peaks (memory, other work's CPU) are the maximum, wall time
    the sum, of all its runs (interrupted ones included); cores and machine are the latest run's. A run still
    marked running in ``previous`` ended without a word (killed): it is marked interrupted."""
    if not previous:
        return record
    runs = [dict(run, status="interrupted") if run.get("status") == "running" else run
            for run in previous.get(RUNS_KEY, [])]
    combined = {**previous, **record, "commands": previous.get("commands", []) + record["commands"],
                "wall_seconds": previous.get("wall_seconds", 0.0) + record["wall_seconds"],
                RUNS_KEY: runs + record.get(RUNS_KEY, [])}
    for key in ("peak_host_memory_mib", "peak_gpu_memory_mib", OTHER_CPU_KEY):
        values = [r[key] for r in (previous, record) if key in r]
        if values:
            combined[key] = max(values)
    return combined


if __name__ == "__main__":
    main()
