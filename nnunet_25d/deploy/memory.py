"""Whether a case can be predicted in the memory there is, said before the work starts: a lower bound of what
nnU-Net's predictor holds at once for a case (the preprocessed image and the logits of every class over the
resampled volume, 4 bytes each), against the free memory of where the logits live."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from nnunet_25d.errors import UserError

GIB = 2 ** 30


class NotEnoughMemory(UserError, MemoryError):
    """A case that cannot fit, named before any work."""


def resampled_voxels(size_xyz: Sequence[int], spacing_xyz: Sequence[float], target_spacing: Sequence[float],
                     transpose_forward: Sequence[int]) -> int:
    """Voxels of a case on the configuration's grid (a 2D configuration keeps the first axis' spacing)."""
    shape = [size_xyz[::-1][i] for i in transpose_forward]
    spacing = [spacing_xyz[::-1][i] for i in transpose_forward]
    target = list(target_spacing) if len(target_spacing) == len(shape) else [spacing[0], *target_spacing]
    return math.prod(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target))


def case_bytes(voxels: int, channels: int, classes: int) -> int:
    """The least memory a case's prediction needs: image and logits of the whole volume, float32."""
    return voxels * 4 * (channels + classes)


def free_bytes(device: str, logits_on_device: bool) -> tuple[int, str]:
    """Free memory where the logits accumulate: the GPU's (CUDA, unless --not_on_device) or the machine's RAM."""
    if device == "cuda" and logits_on_device:
        import torch

        return torch.cuda.mem_get_info()[0], "GPU memory"
    return available_ram(), "RAM"


def available_ram() -> int:
    """The kernel's estimate of memory available to a new process (``MemAvailable``), read without psutil so that
    the deployment runtime needs nothing more; psutil's elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return psutil.virtual_memory().available


def check_cases_fit(cases: dict[str, Sequence[Path]], configuration: dict, transpose_forward: Sequence[int],
                    classes: int, device: str, logits_on_device: bool) -> None:
    """Raise :class:`NotEnoughMemory` naming the largest case and what to do, where it cannot fit."""
    import SimpleITK as sitk

    free, where = free_bytes(device, logits_on_device)
    reader = sitk.ImageFileReader()
    largest, name = 0, None
    for case, files in cases.items():
        reader.SetFileName(str(files[0]))
        reader.ReadImageInformation()
        if reader.GetDimension() != len(transpose_forward):
            continue  # not the model's kind of image: reading the case says so in its own words
        voxels = resampled_voxels(reader.GetSize(), reader.GetSpacing(), configuration["spacing"], transpose_forward)
        if voxels > largest:
            largest, name = voxels, case
    need = case_bytes(largest, len(next(iter(cases.values()))), classes)
    if need > free:
        advice = ("add --not_on_device (the logits then stay in RAM) or predict on a GPU with more memory"
                  if where == "GPU memory" else "free memory, or predict on a machine with more RAM")
        raise NotEnoughMemory(f"case {name} needs at least {need / GIB:.1f} GiB of {where} ({largest:,} voxels x "
                              f"{classes} classes), {free / GIB:.1f} GiB are free: {advice}; -npp 1 -nps 1 keep only one "
                              f"case in flight")
