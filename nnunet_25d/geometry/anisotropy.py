"""Where an anisotropy-aware U-Net switches from in-plane (2D) to 3D stages, computed from the spacing.

Wang et al. (MICCAI 2019): while the slices are coarser than the in-plane grid, convolve and pool in-plane only
(kernels 1x3x3, pooling 1x2x2); once in-plane pooling has brought the in-plane spacing up to the slice spacing, use
3D kernels and pooling. Their 0.41 x 0.41 x 1.5 mm scans get two in-plane levels (0.41 -> 0.82 -> 1.64 mm, 3D from
the third level), as in the group's VS_Seg code. An isotropic dataset gets a plain 3D U-Net.
"""
from __future__ import annotations

from dataclasses import dataclass

# The paper's rule: in-plane stages until the in-plane spacing has reached the slice spacing.
PAPER_SWITCH_RATIO = 1.0
# nnU-Net's own planner (and this module before issue 12): in-plane stages while the slices are >= 2x coarser.
NNUNET_SWITCH_RATIO = 2.0
# Spacings read from image headers carry rounding noise (1.6 vs 1.5999999): within this, "reached" counts.
_RELATIVE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class StageTopology:
    kernel_sizes: list[list[int]]
    strides: list[list[int]]

    @property
    def switch_stage(self) -> int:
        """Index of the first stage with 3D kernels (= number of stages if every stage is in-plane)."""
        return next((i for i, k in enumerate(self.kernel_sizes) if k[0] > 1), len(self.kernel_sizes))


def is_in_plane_stage(slice_spacing: float, in_plane_spacing: float, switch_ratio: float = PAPER_SWITCH_RATIO) -> bool:
    """Whether a stage whose feature maps have these spacings convolves in-plane only: while the slices are more
    than ``switch_ratio`` times coarser than the in-plane grid."""
    return slice_spacing > switch_ratio * in_plane_spacing * (1 + _RELATIVE_TOLERANCE)


def anisotropic_topology(spacing: list[float], patch_size: list[int], max_stages: int = 6,
                         switch_ratio: float = PAPER_SWITCH_RATIO, min_feature_size: int = 4) -> StageTopology:
    """Kernel sizes and strides per stage for a (z, y, x) ``spacing`` and ``patch_size``.

    ``switch_ratio``: a stage is in-plane while slice spacing > ``switch_ratio`` x its in-plane spacing.
    :data:`PAPER_SWITCH_RATIO` (1, default) switches once the in-plane spacing has reached the slice spacing;
    :data:`NNUNET_SWITCH_RATIO` (2) once they are within a factor 2, like nnU-Net's ``3d_fullres`` plans.
    An axis is pooled while its feature map stays at least ``min_feature_size`` after pooling; the slice axis is
    pooled only in 3D stages.
    """
    if len(spacing) != 3 or len(patch_size) != 3:
        raise ValueError(f"need 3D spacing and patch size, got {spacing} and {patch_size}")
    if min(spacing) <= 0 or switch_ratio <= 0:
        raise ValueError(f"spacing and switch_ratio must be positive, got spacing {spacing}, "
                         f"switch_ratio {switch_ratio}")
    current_spacing, size = list(map(float, spacing)), list(map(int, patch_size))
    kernels, strides = [], [[1, 1, 1]]
    in_plane_only = True
    for stage in range(max_stages):
        # 2D, then 3D: once 3D, stay 3D (pooling only z where x/y cannot shrink would otherwise flip back)
        in_plane_only = in_plane_only and is_in_plane_stage(current_spacing[0], min(current_spacing[1:]),
                                                            switch_ratio)
        kernels.append([1, 3, 3] if in_plane_only else [3, 3, 3])
        stride = [1 if (in_plane_only and axis == 0) or size[axis] // 2 < min_feature_size else 2 for axis in range(3)]
        if stride == [1, 1, 1]:
            break
        strides.append(stride)
        size = [s // st for s, st in zip(size, stride)]
        current_spacing = [sp * st for sp, st in zip(current_spacing, stride)]
    return StageTopology(kernels, strides[: len(kernels)])  # the last stage's stride leads nowhere
