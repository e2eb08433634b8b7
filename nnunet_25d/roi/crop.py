"""A region of interest — a voxel box — cropped from an image and resampled to one slice thickness.

Mei et al. (Neurocomputing 2021) train one network per scale on crops of a small, a middle and a large field of
view, every crop resampled to 3 mm slices. Where the box comes from is :mod:`~nnunet_25d.roi.placement`'s (from
the image, the default) or, for the oracle ablation, :func:`roi_box`: the case's own foreground box grown by a
margin in millimetres (z, y, x) on each side (:data:`ROI_SCALES`, ours). The crop keeps the image's in-plane
spacing (nnU-Net resamples in-plane to its plan's spacing anyway; the authors resample to 1 mm) and is resampled to
``slice_thickness`` along z (linear for images, nearest for labels). Arrays are (z, y, x), as SimpleITK returns
them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

PAPER_SLICE_THICKNESS = 3.0  # mm
# the oracle's margins (z, y, x) in mm on each side of the label's box (--roi-from-label); ours
ROI_SCALES: dict[str, tuple[float, float, float]] = {
    "small": (6.0, 10.0, 10.0),
    "middle": (12.0, 30.0, 30.0),
    "large": (24.0, 60.0, 60.0),
}


@dataclass(frozen=True)
class Box:
    """Voxel ranges [start, stop) along z, y, x of an array."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]

    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.start, self.stop))  # type: ignore[return-value]


def foreground_box(labels: np.ndarray) -> Box | None:
    """The smallest box holding every voxel > 0, or None without foreground."""
    where = np.nonzero(labels > 0)
    if not len(where[0]):
        return None
    return Box(tuple(int(w.min()) for w in where), tuple(int(w.max()) + 1 for w in where))  # type: ignore[arg-type]


def roi_box(foreground: Box | None, shape: tuple[int, int, int], spacing_zyx: tuple[float, float, float],
            margin_mm: tuple[float, float, float]) -> Box:
    """``foreground`` grown by ``margin_mm`` (rounded up to whole voxels) on each side, clipped to ``shape``; the
    whole array without foreground."""
    if foreground is None:
        return Box((0, 0, 0), tuple(shape))  # type: ignore[arg-type]
    margin = [int(np.ceil(m / s - 1e-9)) for m, s in zip(margin_mm, spacing_zyx)]
    start = tuple(max(0, a - m) for a, m in zip(foreground.start, margin))
    stop = tuple(min(n, b + m) for b, m, n in zip(foreground.stop, margin, shape))
    return Box(start, stop)  # type: ignore[arg-type]


def roi_grid(image: sitk.Image, box: Box, thickness: float) -> sitk.Image:
    """An empty image on the box's grid with ``thickness`` mm slices: the box's in-plane voxels, along z
    ceil(extent / thickness) slices centred on the box (so the grid covers at least the box)."""
    spacing, direction = np.array(image.GetSpacing()), np.array(image.GetDirection()).reshape(3, 3)
    start_xyz, shape_xyz = np.array(box.start[::-1], float), np.array(box.shape[::-1])
    extent_z = shape_xyz[2] * spacing[2]
    n_slices = max(1, int(np.ceil(extent_z / thickness - 1e-6)))
    centre_z = start_xyz[2] + (shape_xyz[2] - 1) / 2  # in source voxels
    first = np.array([start_xyz[0], start_xyz[1], centre_z])
    origin = np.array(image.GetOrigin()) + direction @ (first * spacing)
    origin = origin - direction[:, 2] * thickness * (n_slices - 1) / 2
    grid = sitk.Image([int(shape_xyz[0]), int(shape_xyz[1]), n_slices], image.GetPixelID())
    grid.SetSpacing([float(spacing[0]), float(spacing[1]), float(thickness)])
    grid.SetOrigin(origin.tolist())
    grid.SetDirection(image.GetDirection())
    return grid


def resampled_onto(image: sitk.Image, grid: sitk.Image, is_label: bool) -> sitk.Image:
    """``image`` sampled at ``grid``'s voxels (linear for images, nearest for labels; 0 outside the image)."""
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    return sitk.Resample(image, grid, sitk.Transform(), interpolator, 0, image.GetPixelID())


def roi_of(image: sitk.Image, labels: sitk.Image | None, box: Box, thickness: float
           ) -> tuple[sitk.Image, sitk.Image | None]:
    """The image (and labels) on the box's grid of ``thickness`` mm slices (:func:`roi_grid`)."""
    grid = roi_grid(image, box, thickness)
    cropped = resampled_onto(image, grid, is_label=False)
    return cropped, None if labels is None else resampled_onto(labels, grid, is_label=True)
