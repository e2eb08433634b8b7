"""Synthetic anisotropic datasets in nnU-Net's raw format.

Every case holds bright discs on a noisy background. Some discs continue through
neighbouring slices ("tube", label 1), others exist in one slice only ("nodule",
label 2). Within a single slice both look the same: only the neighbouring slices
tell them apart, which is exactly what a 2.5D model can see and a 2D one cannot.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

LABELS = {"background": 0, "tube": 1, "nodule": 2}


@dataclass(frozen=True)
class SyntheticSpec:
    """Geometry of the generated volumes (z, y, x order, spacing in mm)."""

    shape: tuple[int, int, int] = (20, 64, 64)
    spacing: tuple[float, float, float] = (4.0, 0.8, 0.8)
    objects_per_class: int = 4
    radius_range: tuple[int, int] = (3, 6)
    nodule_slices: int = 1
    tube_length_range: tuple[int, int] = (3, 8)
    noise_std: float = 0.35
    # mixed slice thickness: case i gets z spacing z_spacings[i % n]; the field of view (shape[0] x spacing[0] mm)
    # and the objects' extents in mm stay, so a nodule is one 4 mm slice, two 2 mm slices, ...
    z_spacings: tuple[float, ...] = ()

    def for_case(self, index: int) -> "SyntheticSpec":
        """The geometry of case ``index``: this one, or rescaled in z to the case's slice spacing."""
        if not self.z_spacings:
            return self
        z_spacing = float(self.z_spacings[index % len(self.z_spacings)])
        scale = self.spacing[0] / z_spacing
        return replace(self, shape=(max(1, round(self.shape[0] * scale)), *self.shape[1:]),
                       spacing=(z_spacing, *self.spacing[1:]), z_spacings=(),
                       tube_length_range=tuple(max(1, round(n * scale)) for n in self.tube_length_range),
                       nodule_slices=max(1, round(self.nodule_slices * scale)))


def _disc(shape_yx: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape_yx[0], : shape_yx[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _object_cells(spec: SyntheticSpec, n_objects: int, rng: np.random.Generator) -> list[tuple[float, float, int]]:
    """In-plane centres on a jittered grid so that objects never overlap."""
    r_max = spec.radius_range[1]
    cell = 2 * r_max + 2
    ny, nx = spec.shape[1] // cell, spec.shape[2] // cell
    if ny * nx < n_objects:
        raise ValueError(
            f"in-plane size {spec.shape[1:]} holds only {ny * nx} objects of radius {r_max}, not {n_objects}: "
            f"use fewer objects per class (--objects-per-class) or a larger in-plane shape"
        )
    chosen = rng.choice(ny * nx, size=n_objects, replace=False)
    cells = []
    for index in chosen:
        cy, cx = divmod(int(index), nx)
        jitter = rng.uniform(-1, 1, size=2)
        radius = int(rng.integers(spec.radius_range[0], r_max + 1))
        cells.append((cy * cell + cell / 2 + jitter[0], cx * cell + cell / 2 + jitter[1], radius))
    return cells


def make_case(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (image float32, label uint8), both (z, y, x)."""
    depth = spec.shape[0]
    label = np.zeros(spec.shape, dtype=np.uint8)
    cells = _object_cells(spec, 2 * spec.objects_per_class, rng)
    for i, (cy, cx, radius) in enumerate(cells):
        is_tube = i % 2 == 0
        if is_tube:
            length = int(rng.integers(spec.tube_length_range[0], spec.tube_length_range[1] + 1))
            length = min(length, depth)
            z0 = int(rng.integers(0, depth - length + 1))
            drift = rng.uniform(-0.5, 0.5, size=2)
            for step, z in enumerate(range(z0, z0 + length)):
                centre = (cy + drift[0] * step, cx + drift[1] * step)
                label[z][_disc(spec.shape[1:], centre, radius)] = LABELS["tube"]
        else:
            z0 = int(rng.integers(0, depth - min(spec.nodule_slices, depth) + 1))
            for z in range(z0, min(z0 + spec.nodule_slices, depth)):
                label[z][_disc(spec.shape[1:], (cy, cx), radius)] = LABELS["nodule"]
    background = rng.normal(0.0, 1.0, size=spec.shape).cumsum(axis=2) * 0.05
    image = background + (label > 0) * 1.5 + rng.normal(0.0, spec.noise_std, size=spec.shape)
    return image.astype(np.float32), label


def write_nifti(array: np.ndarray, spacing_zyx: tuple[float, float, float], path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    sitk.WriteImage(image, str(path), useCompression=True)


def write_dataset(
    raw_root: str | Path,
    dataset_id: int,
    name: str = "Synthetic25D",
    n_train: int = 10,
    n_test: int = 4,
    spec: SyntheticSpec = SyntheticSpec(),
    seed: int = 0,
) -> Path:
    """Write ``DatasetXXX_name`` (imagesTr/labelsTr, dataset.json, and with ``n_test`` > 0 a labelled test set in
    imagesTs/labelsTs, which ``nnunet25d benchmark`` scores) and return its folder."""
    folder = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    for sub in ("imagesTr", "labelsTr") + (("imagesTs", "labelsTs") if n_test > 0 else ()):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(n_train + n_test):
        split = "Tr" if index < n_train else "Ts"
        case = f"case_{index:03d}"
        case_spec = spec.for_case(index)
        image, label = make_case(case_spec, rng)
        write_nifti(image, case_spec.spacing, folder / f"images{split}" / f"{case}_0000.nii.gz")
        write_nifti(label, case_spec.spacing, folder / f"labels{split}" / f"{case}.nii.gz")
    dataset_json = {
        "channel_names": {"0": "MRI"},
        "labels": LABELS,
        "numTraining": n_train,
        "file_ending": ".nii.gz",
        "name": name,
        "description": "tubes (label 1) and one-slice nodules (label 2) look alike in-plane",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder
