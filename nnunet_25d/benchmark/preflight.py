"""Before heavy work: what the machine has now (other work on the cores, free memory, a GPU) and how long the run
should take, printed before the first nnU-Net command, so a busy machine is a warning up front and not only a
flag in the report afterwards."""
from __future__ import annotations

import importlib
import math
import os
import time
from dataclasses import dataclass

import psutil

from nnunet_25d.errors import SetupError
from nnunet_25d.report.load import OtherCpuSampler, contended, slowdown

# nnU-Net's trainer lookup imports the modules under nnunetv2/training/nnUNetTrainer until it finds the trainer, this
# one among them; it imports timm, which imports torchvision: a torchvision built for another torch stops the lookup
# for every trainer but the plain nnUNetTrainer (found first)
LOOKUP_IMPORTS = "nnunetv2.training.nnUNetTrainer.primus.primus_trainers"
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

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


def matching_pair_command(torch_version: str) -> str:
    """The pip command that installs ``torch_version`` with the torchvision built for it, from one source."""
    release, _, build = torch_version.partition("+")
    major, minor, patch = (release.split(".") + ["0", "0"])[:3]
    vision = f"0.{int(minor) + 15}.{patch}" if major == "2" else None
    if vision is None:
        return "pip install torch torchvision (one command, one source)"
    if build == "cpu":
        return f"pip install torch=={release}+cpu torchvision=={vision}+cpu --index-url {PYTORCH_CPU_INDEX}"
    return f"pip install torch=={release} torchvision=={vision}"


def check_trainer_lookup_imports(module: str = LOOKUP_IMPORTS) -> None:
    """Import what nnU-Net's trainer lookup will import; raise :class:`SetupError` naming the fix when it fails,
    before any nnU-Net command runs."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is not None and module.startswith(error.name):
            return  # another nnU-Net release without this module: nothing to check
        problem = error
    except Exception as error:  # a torchvision built for another torch raises RuntimeError or OSError here
        problem = error
    else:
        return
    import torch

    reason = " ".join(str(problem).split()) or type(problem).__name__
    raise SetupError(f"nnU-Net's trainer lookup cannot import {module} ({type(problem).__name__}: {reason}); it "
                     f"imports timm and torchvision for every trainer but nnU-Net's plain nnUNetTrainer, so no plugin trainer "
                     f"and no nnU-Net trainer variant can train. "
                     f"Install torch and torchvision from one source: `{matching_pair_command(torch.__version__)}` "
                     f"(without PyTorch's index: `pip install torch==2.14.1 torchvision==0.29.1`)")


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
