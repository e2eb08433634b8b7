"""nnU-Net's default resampling of images and logits (``resample_data_or_seg_to_shape``, not for segmentations).

Same algorithm, same libraries, so the numbers are the same: on anisotropic data each slice is resized in-plane
with scikit-image (spline ``order``), then the slice axis is interpolated with SciPy's ``map_coordinates``
(``order_z``); otherwise the whole volume is resized at once. Computed in float64, returned in the input's dtype.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import map_coordinates
from skimage.transform import resize

ANISOTROPY_THRESHOLD = 3  # nnU-Net's ANISO_THRESHOLD


def new_shape_for_spacing(shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]) -> list[int]:
    return [int(round(s / n * size)) for s, n, size in zip(spacing, new_spacing, shape)]


def coarse_axis(spacing: Sequence[float]) -> int | None:
    """The one axis with the largest spacing; None when two or three axes share it."""
    spacing = np.asarray(spacing, dtype=float)
    axes = np.where(spacing.max() / spacing == 1)[0]
    return int(axes[0]) if len(axes) == 1 else None


def is_anisotropic(spacing: Sequence[float], threshold: float) -> bool:
    return bool(np.max(spacing) / np.min(spacing) > threshold)


def separate_axis(force_separate_z: bool | None, spacing: Sequence[float], new_spacing: Sequence[float],
                  threshold: float = ANISOTROPY_THRESHOLD) -> int | None:
    """The axis resampled on its own (``order_z``) after per-slice resizing, or None for one 3D resize."""
    if force_separate_z is not None:
        return coarse_axis(spacing) if force_separate_z else None
    for candidate in (spacing, new_spacing):
        if is_anisotropic(candidate, threshold):
            return coarse_axis(candidate)
    return None


def resample(data: np.ndarray, new_shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float],
             order: int = 3, order_z: int = 0, force_separate_z: bool | None = None,
             separate_z_anisotropy_threshold: float = ANISOTROPY_THRESHOLD, is_seg: bool = False) -> np.ndarray:
    """(C, X, Y, Z) ``data`` resampled to ``new_shape``; the keyword arguments are the plans' resampling kwargs."""
    if is_seg:
        raise ValueError("the runtime resamples images and logits only (is_seg=False)")
    if data.ndim != 4:
        raise ValueError(f"data must be (C, X, Y, Z), got shape {data.shape}")
    new_shape = [int(n) for n in new_shape]
    if list(data.shape[1:]) == new_shape:
        return data
    axis = separate_axis(force_separate_z, spacing, new_spacing, separate_z_anisotropy_threshold)
    result = np.zeros((data.shape[0], *new_shape), dtype=data.dtype)
    as_float = data.astype(float, copy=False)
    for channel in range(data.shape[0]):
        if axis is None:
            result[channel] = resize(as_float[channel], new_shape, order, mode="edge", anti_aliasing=False)
        else:
            result[channel] = _resample_separately(as_float[channel], new_shape, axis, order, order_z)
    return result


def _resample_separately(volume: np.ndarray, new_shape: list[int], axis: int, order: int, order_z: int
                         ) -> np.ndarray:
    in_plane = [n for a, n in enumerate(new_shape) if a != axis]
    per_slice = np.stack([resize(np.take(volume, i, axis), in_plane, order, mode="edge", anti_aliasing=False)
                          for i in range(volume.shape[axis])], axis)
    if per_slice.shape[axis] == new_shape[axis]:
        return per_slice
    # pixel centres of the new grid in the old one (align_corners=False), as skimage's resize maps them
    grid = np.mgrid[tuple(slice(0, n) for n in new_shape)].astype(float)
    for a, (old, new) in enumerate(zip(per_slice.shape, new_shape)):
        grid[a] = old / new * (grid[a] + 0.5) - 0.5
    return map_coordinates(per_slice, grid, order=order_z, mode="nearest")
