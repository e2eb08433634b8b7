"""A CT body phantom whose targets sit at a body-relative position, for Mei et al.'s image-placed fields of view.

Each case: air (-1000 HU) around an elliptic body of soft tissue (40 HU, noise) whose size and centre vary from case
to case, a couch plate (-100 HU, a separate component) below it, and two targets inside the body at a fixed place
relative to the body's box (with a little jitter): a tube over several slices (label 1, 80 HU) and a one-slice
nodule (label 2, 80 HU). Within a slice both look alike; only the neighbouring slices tell them apart. The field of
view a model needs therefore follows the body, which the image shows, and not the image grid.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

LABELS = {"background": 0, "tube": 1, "nodule": 2}
TUBE_AT, NODULE_AT = (0.35, 0.40), (0.55, 0.62)  # (y, x) fractions of the body box


def make_body_case(shape: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image in HU float32, labels uint8), both (z, y, x)."""
    depth, height, width = shape
    image = np.full(shape, -1000.0, np.float32)
    labels = np.zeros(shape, np.uint8)
    radius = np.array([rng.uniform(0.22, 0.34) * height, rng.uniform(0.24, 0.36) * width])
    centre = np.array([rng.uniform(0.4, 0.55) * height, rng.uniform(0.4, 0.6) * width])
    yy, xx = np.mgrid[:height, :width]
    body = ((yy - centre[0]) / radius[0]) ** 2 + ((xx - centre[1]) / radius[1]) ** 2 <= 1
    image[:, body] = 40.0
    couch = int(min(height - 2, centre[0] + radius[0] + 3))
    image[:, couch:couch + 2, 2:width - 2] = -100.0
    first = centre - radius  # the body box's corner, its size 2 * radius

    def at(fraction: tuple[float, float]) -> np.ndarray:
        return first + np.array(fraction) * 2 * radius + rng.uniform(-0.03, 0.03, 2) * 2 * radius

    def disc(point: np.ndarray, r: float) -> np.ndarray:
        return (yy - point[0]) ** 2 + (xx - point[1]) ** 2 <= r ** 2

    length = int(rng.integers(3, max(4, depth // 2)))
    z0 = int(rng.integers(0, depth - length + 1))
    tube, r_tube = at(TUBE_AT), rng.uniform(2.0, 3.5)
    for z in range(z0, z0 + length):
        labels[z][disc(tube, r_tube) & body] = LABELS["tube"]
    nodule_z = int(rng.integers(0, depth))
    labels[nodule_z][disc(at(NODULE_AT), rng.uniform(2.0, 3.5)) & body & (labels[nodule_z] == 0)] = LABELS["nodule"]
    image[labels > 0] = 80.0
    image += rng.normal(0.0, 10.0, shape).astype(np.float32)
    return image, labels


def write_body_phantom_dataset(raw_root: str | Path, dataset_id: int, name: str = "BodyPhantom", n_train: int = 10,
                               n_test: int = 0, shape: tuple[int, int, int] = (20, 96, 96),
                               spacing_zyx: tuple[float, float, float] = (4.0, 1.0, 1.0), seed: int = 0) -> Path:
    """Write ``DatasetXXX_name`` (CT) with ``n_train`` labelled cases and ``n_test`` in imagesTs/labelsTs."""
    folder = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    rng = np.random.default_rng(seed)
    for index in range(n_train + n_test):
        split = "Tr" if index < n_train else "Ts"
        for sub in (f"images{split}", f"labels{split}"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        image, labels = make_body_case(shape, rng)
        for array, path in ((image, folder / f"images{split}" / f"case_{index:03d}_0000.nii.gz"),
                            (labels, folder / f"labels{split}" / f"case_{index:03d}.nii.gz")):
            written = sitk.GetImageFromArray(array)
            written.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
            sitk.WriteImage(written, str(path), useCompression=True)
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": n_train, "file_ending": ".nii.gz",
        "name": name, "description": "CT body phantom; tube and one-slice nodule at body-relative positions"},
        indent=2))
    return folder
