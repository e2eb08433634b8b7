"""Where an anisotropy-aware U-Net switches from in-plane (2D) to 3D stages, computed from the spacing.

Wang et al. (MICCAI 2019): while the through-plane spacing is much coarser than the in-plane spacing, convolve and
pool in-plane only (kernels 1x3x3, pooling 1x2x2); once in-plane pooling has brought the spacings within a factor
``ratio`` of each other, use 3D kernels and pooling. An isotropic dataset gets a plain 3D U-Net.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageTopology:
    kernel_sizes: list[list[int]]
    strides: list[list[int]]

    @property
    def switch_stage(self) -> int:
        """Index of the first stage with 3D kernels (= number of stages if every stage is in-plane)."""
        return next((i for i, k in enumerate(self.kernel_sizes) if k[0] > 1), len(self.kernel_sizes))


def anisotropic_topology(spacing: list[float], patch_size: list[int], max_stages: int = 6, ratio: float = 2.0,
                         min_feature_size: int = 4) -> StageTopology:
    """Kernel sizes and strides per stage for a (z, y, x) ``spacing`` and ``patch_size``.

    An axis is pooled while its feature map stays at least ``min_feature_size`` after pooling; the slice axis is
    pooled only in 3D stages.
    """
    if len(spacing) != 3 or len(patch_size) != 3:
        raise ValueError(f"need 3D spacing and patch size, got {spacing} and {patch_size}")
    current_spacing, size = list(map(float, spacing)), list(map(int, patch_size))
    kernels, strides = [], [[1, 1, 1]]
    for stage in range(max_stages):
        in_plane_only = current_spacing[0] / min(current_spacing[1:]) >= ratio
        kernels.append([1, 3, 3] if in_plane_only else [3, 3, 3])
        if stage == max_stages - 1:
            break
        stride = [1 if (in_plane_only and axis == 0) or size[axis] // 2 < min_feature_size else 2 for axis in range(3)]
        if stride == [1, 1, 1]:
            break
        strides.append(stride)
        size = [s // st for s, st in zip(size, stride)]
        current_spacing = [sp * st for sp, st in zip(current_spacing, stride)]
    return StageTopology(kernels, strides[: len(kernels)])
