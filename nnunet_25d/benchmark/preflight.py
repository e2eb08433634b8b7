"""Before heavy work: what the machine has now (other work on the cores, free memory, a GPU) and how long the run
should take, printed before the first nnU-Net command, so a busy machine is a warning up front and not only a
flag in the report afterwards."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import psutil

from nnunet_25d.report.load import OtherCpuSampler, contended, slowdown

GIB = 2 ** 30


@dataclass(frozen=True)
class MachineState:
    cores: int
    other_cpu_cores: float  # cores other processes used over the sample, as the report's sampler counts them
    available_memory_gib: float
    gpu: str | None  # the first CUDA device's name, None without one

    @property
    def busy(self) -> bool:
        return contended(self.other_cpu_cores, self.cores)

    @property
    def slowdown(self) -> float:
        return slowdown(self.other_cpu_cores, self.cores)


def cuda_device_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def read_machine(sample_seconds: float = 2.0) -> MachineState:
    with OtherCpuSampler(interval=sample_seconds / 4, window=sample_seconds) as other:
        time.sleep(sample_seconds)
    return MachineState(cores=os.cpu_count() or 1, other_cpu_cores=other.mean,
                        available_memory_gib=psutil.virtual_memory().available / GIB, gpu=cuda_device_name())


def default_device(gpu: str | None) -> str:
    """nnU-Net's device for this machine: ``cuda`` only where there is a CUDA GPU."""
    return "cuda" if gpu else "cpu"


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def machine_lines(state: MachineState, device: str, need_memory_gib: float | None) -> list[str]:
    """What the machine has, then a warning per problem (each naming what to do)."""
    gpu = f"GPU {state.gpu}" if state.gpu else "no CUDA GPU"
    lines = [f"machine: {state.cores} cores ({state.other_cpu_cores:.2f} busy with other work), "
             f"{state.available_memory_gib:.1f} GiB memory free, {gpu}; running on {device}"]
    if state.busy:
        lines.append(f"warning: other processes use {state.other_cpu_cores:.2f} of {state.cores} cores now: this run "
                     f"will take about {state.slowdown:.1f}x longer and its timings will be flagged in the report; "
                     f"stop the other work (see `top`) for comparable timings")
    if need_memory_gib is not None and need_memory_gib > state.available_memory_gib:
        lines.append(f"warning: this run needs about {need_memory_gib:.1f} GiB of memory, {state.available_memory_gib:.1f}"
                     f" GiB are free: close other programs or it may be killed out of memory")
    if device == "cuda" and not state.gpu:
        lines.append("warning: -device cuda on a machine without a CUDA GPU: nnU-Net will fail; use -device cpu")
    return lines


def estimate_line(idle_seconds: float | None, state: MachineState, basis: str) -> str:
    if idle_seconds is None or math.isnan(idle_seconds):
        return f"estimated wall time: unknown ({basis})"
    expected = idle_seconds * (state.slowdown if state.busy else 1.0)
    busy = f", {state.slowdown:.1f}x for the other work running now" if state.busy else ""
    return f"estimated wall time: {duration(expected)} ({basis}{busy})"


def preflight(device: str, idle_seconds: float | None, basis: str, need_memory_gib: float | None = None,
              state: MachineState | None = None) -> MachineState:
    """Print the machine's state, the estimate and any warnings; return the state."""
    state = state or read_machine()
    for line in machine_lines(state, device, need_memory_gib) + [estimate_line(idle_seconds, state, basis)]:
        print(line, flush=True)
    return state
