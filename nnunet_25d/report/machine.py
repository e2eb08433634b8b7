"""The machine a report's timings come from: CPU model and cores, GPU model (CUDA), torch and nnU-Net versions."""
from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    gpu: str | None  # None: the run used no CUDA device
    torch: str
    nnunetv2: str

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "Machine":
        return cls(**{key: record.get(key) for key in ("cpu", "cores", "gpu", "torch", "nnunetv2")})

    def describe(self) -> str:
        gpu = f"GPU {self.gpu}" if self.gpu else "no GPU (run on CPU)"
        return f"CPU {self.cpu}, {self.cores} cores; {gpu}; torch {self.torch}, nnU-Net (nnunetv2) {self.nnunetv2}"


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's brand string, from py-cpuinfo (Linux, macOS and Windows alike); the platform's processor name if
    py-cpuinfo cannot read it (a record must not fail a finished training)."""
    import cpuinfo

    try:
        info = cpuinfo.get_cpu_info()
    except Exception:  # py-cpuinfo probes the OS in many ways; any of them may fail in a sandbox
        info = {}
    return info.get("brand_raw") or platform.processor() or platform.machine() or "unknown CPU"


def this_machine(cuda: bool = False) -> Machine:
    """This machine; the GPU only when ``cuda`` (the run used it) and torch sees one."""
    import torch

    gpu = torch.cuda.get_device_name(0) if cuda and torch.cuda.is_available() else None
    return Machine(cpu_model(), os.cpu_count() or 0, gpu, torch.__version__, _installed("nnunetv2"))
