"""Surface metrics of a predicted segmentation, per case and class, in mm: HD95 and normalised surface Dice (NSD),
computed with MONAI (``compute_hausdorff_distance``, ``compute_surface_dice``) at the image's voxel spacing.

The rule for absent structures is the one the benchmark applies to Dice (decided from the masks, like Dice from
nnU-Net's ``n_ref``/``n_pred``):

- reference and prediction both empty: NaN for both metrics (a correct "not there" is left out of means);
- exactly one empty: HD95 = the image diagonal in mm (larger than any distance inside the image), NSD = 0;
- both present: MONAI's values. HD95 is the larger of the two directed 95th percentiles of the distances between
  edge voxels (centre to centre, in mm); NSD is the fraction of both masks' surface within the tolerance of the
  other mask's surface. On anisotropic grids (largest / smallest spacing > :data:`ANISOTROPY_RATIO`) each surface
  element counts by its area (MONAI's ``use_subvoxels``, the surface-distance definition): counting edge voxels
  once each, MONAI's default, weighs a face by how many voxels it has, so thick slices under-weigh the faces
  along z and the score moves with the slice thickness. Isotropic grids keep MONAI's default.

Images are read with nnU-Net's reader for the dataset's ``file_ending`` (SimpleITK for NIfTI, NRRD, MHA), the way
nnU-Net's own evaluation reads them; axes of size 1 (2D data) are dropped so that a 2D image has 2D surfaces.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np

Label = Union[int, tuple[int, ...]]  # a label value or, for region-based datasets, the labels of a region
DEFAULT_TOLERANCE_MM = 1.0
CACHE_FILE = "benchmark_surface.json"
ANISOTROPY_RATIO = 1.1  # above it NSD is area-weighted
NSD_RULE = "area-weighted above 1.1 anisotropy"  # in the cache: scores made under another rule are made again


@dataclass(frozen=True)
class SurfaceScore:
    hd95: float  # mm
    nsd: float  # in [0, 1]


BOTH_EMPTY = SurfaceScore(float("nan"), float("nan"))


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The HD95 of a case where exactly one of reference and prediction is empty."""
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


def crop_to_objects(reference: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the bounding box of their union plus one voxel (or the image border): distances and edge
    voxels stay exactly the same, MONAI's float copies stay small."""
    occupied = np.argwhere(reference | prediction)
    low = np.maximum(occupied.min(axis=0) - 1, 0)
    high = np.minimum(occupied.max(axis=0) + 2, reference.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    return reference[box], prediction[box]


def is_anisotropic(spacing: Sequence[float]) -> bool:
    return max(spacing) > ANISOTROPY_RATIO * min(spacing)


def surface_score(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                  tolerance_mm: float, area_weighted: bool | None = None) -> SurfaceScore:
    """HD95 and NSD of two boolean masks of the same shape, ``spacing`` in mm per array axis; NSD area-weighted
    when ``area_weighted`` (None: on anisotropic spacing)."""
    if reference.shape != prediction.shape:
        raise ValueError(f"reference {reference.shape} and prediction {prediction.shape} differ in shape")
    has_reference, has_prediction = bool(reference.any()), bool(prediction.any())
    if not has_reference and not has_prediction:
        return BOTH_EMPTY
    if not has_reference or not has_prediction:
        return SurfaceScore(image_diagonal_mm(reference.shape, spacing), 0.0)
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice  # ~6 s to import: only when needed

    reference, prediction = crop_to_objects(reference.astype(bool), prediction.astype(bool))
    y, y_pred = (torch.from_numpy(np.ascontiguousarray(m)[None, None]) for m in (reference, prediction))
    spacing = [float(s) for s in spacing]
    with warnings.catch_warnings():  # MONAI 1.6 warns about an argument it passes itself
        warnings.simplefilter("ignore", FutureWarning)
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
        nsd = compute_surface_dice(y_pred, y, [float(tolerance_mm)], include_background=True, spacing=spacing,
                                   use_subvoxels=is_anisotropic(spacing) if area_weighted is None else area_weighted)
    return SurfaceScore(float(hd95.item()), float(nsd.item()))


def read_segmentation(path: Path, reader) -> tuple[np.ndarray, tuple[float, ...]]:
    """A label image and its spacing per array axis (mm), via nnU-Net's reader; size-1 axes dropped (2D data)."""
    try:
        segmentation, properties = reader.read_seg(str(path))
    except Exception as error:  # a truncated file from a killed run, or a wrong format
        reason = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip()
        raise SystemExit(f"cannot read segmentation {path} ({reason}); if a killed run left it half-written, "
                         f"delete it and run the benchmark again") from None
    array, spacing = segmentation[0], [float(s) for s in properties["spacing"]]
    axes = [axis for axis, size in enumerate(array.shape) if size > 1]
    if len(axes) < 2:  # MONAI needs 2D or 3D: a single row or pixel keeps the last two axes
        axes = list(range(array.ndim))[-2:]
    return array.reshape([array.shape[a] for a in axes]), tuple(spacing[a] for a in axes)


def label_mask(segmentation: np.ndarray, label: Label) -> np.ndarray:
    from nnunetv2.evaluation.evaluate_predictions import region_or_label_to_mask  # nnU-Net's, for the same masks

    return region_or_label_to_mask(segmentation, label)


def score_case(reference_file: Path, prediction_file: Path, labels: Mapping[str, Label],
               tolerances_mm: Mapping[str, float], reader, ignore_label: int | None = None,
               area_weighted: bool | None = None) -> dict[str, SurfaceScore]:
    """Every class of one case. Predicted voxels under the reference's ignore label are left out, as nnU-Net's
    Dice leaves them out of its counts."""
    reference, spacing = read_segmentation(reference_file, reader)
    prediction, _ = read_segmentation(prediction_file, reader)
    if reference.shape != prediction.shape:
        raise SystemExit(f"{prediction_file} has shape {prediction.shape}, its reference {reference_file} "
                         f"{reference.shape}: they must be the same case on the same grid")
    keep = reference != ignore_label if ignore_label is not None else np.ones(reference.shape, dtype=bool)
    return {name: surface_score(label_mask(reference, label), label_mask(prediction, label) & keep, spacing,
                                tolerances_mm[name], area_weighted)
            for name, label in labels.items()}


def tolerances_per_class(values: Sequence[float] | None, class_names: Sequence[str]) -> dict[str, float]:
    """``--nsd-tolerance``: one value for every class, or one per class in dataset.json's order."""
    values = list(values) if values else [DEFAULT_TOLERANCE_MM]
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise SystemExit(f"--nsd-tolerance {' '.join(map(str, values))}: tolerances are distances in mm, >= 0")
    if len(values) == 1:
        return {name: float(values[0]) for name in class_names}
    if len(values) != len(class_names):
        raise SystemExit(f"--nsd-tolerance got {len(values)} values for {len(class_names)} classes "
                         f"({', '.join(class_names)}): give one value for all, or one per class in this order")
    return {name: float(v) for name, v in zip(class_names, values)}


def _file_stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_mtime_ns, stat.st_size]


@dataclass(frozen=True)
class SurfaceScorer:
    """Scores the cases of one folder of predictions against one folder of references, with a cache next to the
    predictions (``benchmark_surface.json``): a case is computed again only when its files or the tolerance
    changed, so a report re-collected with ``--collect-only`` does not re-read every image."""

    labels: Mapping[str, Label]  # class name -> label value (or region)
    tolerances_mm: Mapping[str, float]
    file_ending: str
    reader: type  # nnU-Net's reader/writer class for the dataset
    ignore_label: int | None = None
    area_weighted: bool | None = None  # NSD by surface area; None: on anisotropic spacing

    def score(self, cases: Sequence[str], predictions: Path, references: Path) -> dict[str, dict[str, SurfaceScore]]:
        cache_file = predictions / CACHE_FILE
        cache = self._load(cache_file)
        reader, changed = self.reader(), False
        for case in cases:
            prediction, reference = predictions / f"{case}{self.file_ending}", references / f"{case}{self.file_ending}"
            for path, what in ((prediction, "prediction"), (reference, "reference")):
                if not path.is_file():
                    raise SystemExit(f"no {what} {path} for case {case}: surface metrics need nnU-Net's "
                                     f"validation/test predictions and the references (gt_segmentations, labelsTs)")
            stamps = [_file_stamp(prediction), _file_stamp(reference)]
            entry = cache.get(case)
            if entry is None or entry["files"] != stamps or set(entry["classes"]) != set(self.labels):
                scores = score_case(reference, prediction, self.labels, self.tolerances_mm, reader, self.ignore_label,
                                    self.area_weighted)
                cache[case] = {"files": stamps, "classes": {n: [s.hd95, s.nsd] for n, s in scores.items()}}
                changed = True
        if changed:
            self._save(cache_file, cache)
        return {case: {name: SurfaceScore(*cache[case]["classes"][name]) for name in self.labels} for case in cases}

    @property
    def _nsd_rule(self) -> str:
        return NSD_RULE if self.area_weighted is None else f"area-weighted {self.area_weighted}"

    def _load(self, cache_file: Path) -> dict:
        if not cache_file.is_file():
            return {}
        try:
            content = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            return {}
        made_under = (content.get("tolerances_mm"), content.get("ignore_label"), content.get("nsd"))
        if made_under != (dict(self.tolerances_mm), self.ignore_label, self._nsd_rule):
            return {}
        return content.get("cases", {})

    def _save(self, cache_file: Path, cases: dict) -> None:
        content = {"tolerances_mm": dict(self.tolerances_mm), "ignore_label": self.ignore_label,
                   "nsd": self._nsd_rule, "cases": cases}
        temporary = cache_file.with_suffix(".tmp")
        try:  # NaN is written as NaN (Python's json reads it back)
            temporary.write_text(json.dumps(content))
            os.replace(temporary, cache_file)
        except OSError:  # a read-only results folder: the scores are still used, only not kept
            pass


def scorer_for(dataset_json: dict, tolerances: Sequence[float] | None, area_weighted: bool | None = None
               ) -> SurfaceScorer:
    """The scorer for a dataset: its classes (without background and ignore), reader, file ending, ignore label."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    labels = dataset_labels(dataset_json)
    ignore = dataset_json["labels"].get("ignore")
    reader = determine_reader_writer_from_dataset_json(dataset_json, verbose=False)
    return SurfaceScorer(labels, tolerances_per_class(tolerances, list(labels)), dataset_json["file_ending"], reader,
                         None if ignore is None else int(ignore), area_weighted)


def dataset_labels(dataset_json: dict) -> dict[str, Label]:
    """Class name -> label value (or region), in dataset.json's order, without background and ignore."""
    labels = {}
    for name, value in dataset_json["labels"].items():
        if name == "ignore":
            continue
        label = tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else int(value)
        if label not in (0, (0,)):
            labels[name] = label
    return labels
