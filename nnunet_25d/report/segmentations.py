"""What the segmentation figures show, computed from the numbers and the label images the reports already have:
which cases (largest and median paired Dice difference of a 2.5D variant against each baseline), which slice
(where the two models disagree most), which row the through-plane view cuts, the per-slice Dice along the slice
axis, and on how many slices each model misses a class or paints it where the reference has none.

Arrays are handled slice axis first, ``(S, R, C)``: the slice axis is the one of largest spacing, the axis
nnU-Net's 2d configuration slices (``transpose_forward`` puts it first). Classes are dataset.json's labels or
regions; voxels of the ignore label count for nobody, as in nnU-Net's evaluation."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODES = ("none", "key", "all")
WINDOW_PERCENTILES = (0.5, 99.5)  # of the foreground's intensities, as nnU-Net clips CT
WINDOW_MARGIN = 0.25  # the window widened by this share of its width on each side: surrounding tissue stays visible


@dataclass(frozen=True)
class ModelSegmentations:
    """One model of a report on one split: its per-case Dice and where its predicted label images lie."""

    label: str
    baseline: bool
    dice: dict[str, dict[str, float]]  # class -> case -> Dice (NaN: reference and prediction both empty)
    files: dict[str, Path]  # case -> predicted label image


@dataclass(frozen=True)
class SplitFiles:
    """The cases of one split: reference label images and the images (first channel) they were drawn on."""

    split: str  # "test" | "cv"
    title: str  # e.g. "test set (fold-0 model)"
    references: dict[str, Path]
    images: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Pick:
    """A case chosen for a class: the ``reason`` ("largest" | "median") paired Dice difference of ``variant``
    against ``baseline``."""

    class_name: str
    case: str
    variant: str
    baseline: str
    difference: float  # variant minus baseline
    reason: str


def paired(ours: float, theirs: float) -> tuple[float, float] | None:
    """The pair under the absent/present rule: both empty (NaN) leaves the case out; one model correctly empty
    beside one that painted the class scores 1."""
    if math.isnan(ours) and math.isnan(theirs):
        return None
    return (1.0 if math.isnan(ours) else ours), (1.0 if math.isnan(theirs) else theirs)


def differences(variant: ModelSegmentations, baseline: ModelSegmentations, class_name: str) -> dict[str, float]:
    """Case -> variant minus baseline over the cases both scored (sorted by case)."""
    ours, theirs = variant.dice.get(class_name, {}), baseline.dice.get(class_name, {})
    pairs = {case: paired(ours[case], theirs[case]) for case in sorted(set(ours) & set(theirs))}
    return {case: pair[0] - pair[1] for case, pair in pairs.items() if pair is not None}


def mean_dice(model: ModelSegmentations, class_name: str) -> float:
    values = [v for v in model.dice.get(class_name, {}).values() if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def best_variant(models: list[ModelSegmentations], class_name: str) -> ModelSegmentations | None:
    """The non-baseline model with the highest mean Dice of the class (ties: the first listed)."""
    scored = [m for m in models if not m.baseline and not math.isnan(mean_dice(m, class_name))]
    return max(scored, key=lambda m: mean_dice(m, class_name), default=None)


def largest_and_median(deltas: dict[str, float]) -> list[tuple[str, str]]:
    """[(case, "largest"), (case, "median")]: the case of the largest absolute difference (ties: the first case in
    order) and the case whose difference is the median (an even count: the lower of the two middle ones; ties: the
    first case); one entry where both are the same case."""
    if not deltas:
        return []
    cases = list(deltas)
    largest = max(cases, key=lambda c: abs(deltas[c]))
    ordered = sorted(cases, key=lambda c: deltas[c])  # stable: equal differences keep the case order
    median = ordered[(len(ordered) - 1) // 2]
    return [(largest, "largest")] + ([(median, "median")] if median != largest else [])


def pick_cases(models: list[ModelSegmentations], classes: list[str], mode: str = "key") -> list[Pick]:
    """Per class, against each baseline (in the order given), the largest and the median difference case of the
    best 2.5D variant (``key``) or of every variant (``all``); ``none``: nothing. A (class, case) is drawn once:
    the first pick that chose it."""
    if mode not in MODES:
        raise ValueError(f"figures: {mode!r} is not one of {', '.join(MODES)}")
    if mode == "none":
        return []
    baselines = [m for m in models if m.baseline]
    picks, seen = [], set()
    for name in classes:
        best = best_variant(models, name)
        variants = [best] if mode == "key" and best is not None else \
            [m for m in models if not m.baseline] if mode == "all" else []
        for variant in variants:
            for baseline in baselines:
                deltas = differences(variant, baseline, name)
                for case, reason in largest_and_median(deltas):
                    if (name, case) not in seen:
                        seen.add((name, case))
                        picks.append(Pick(name, case, variant.label, baseline.label, deltas[case], reason))
    return picks


def class_values(dataset_json: dict) -> dict[str, int | tuple[int, ...]]:
    """Class name -> its label value, or the label values of its region, from dataset.json (background and the
    ignore label left out)."""
    values = {}
    for name, value in dataset_json["labels"].items():
        if name == "ignore":
            continue
        value = tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else int(value)
        if value not in (0, (0,)):
            values[name] = value
    return values


def ignore_value(dataset_json: dict) -> int | None:
    """nnU-Net's ignore label (the label named ``ignore``), if the dataset has one."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    return LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order")).ignore_label


def class_mask(segmentation: np.ndarray, value: int | tuple[int, ...]) -> np.ndarray:
    """nnU-Net's evaluation mask: the label, or any label of the region."""
    from nnunetv2.evaluation.evaluate_predictions import region_or_label_to_mask

    return region_or_label_to_mask(segmentation, value)


def slice_axis(spacing: tuple[float, ...]) -> int:
    """The axis of largest spacing (ties: the first), the one nnU-Net's 2d configuration slices."""
    return int(np.argmax(spacing))


@dataclass
class CaseVolumes:
    """One case's label images (and image), slice axis first."""

    case: str
    reference: np.ndarray  # (S, R, C) labels
    predictions: dict[str, np.ndarray]  # model label -> (S, R, C) labels
    spacing: tuple[float, float, float]  # mm, slice axis first
    axis: int  # the slice axis in the files' array order
    image: np.ndarray | None = None  # (S, R, C) first channel; None where not found or unreadable
    problems: list[str] = field(default_factory=list)  # models (or the image) left out, and why


def _reader(dataset_json: dict, example: Path):
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    return determine_reader_writer_from_dataset_json(dataset_json, str(example), verbose=False)()


def _first(array: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(array, axis, 0)


def read_case(case: str, split: SplitFiles, models: list[ModelSegmentations], dataset_json: dict
              ) -> CaseVolumes:
    """The reference, every model's prediction (those without a file, or on another grid, left out with a note)
    and the image where it can be read, with nnU-Net's reader for the dataset's file ending."""
    reader = _reader(dataset_json, split.references[case])
    reference, properties = reader.read_seg(str(split.references[case]))
    spacing = tuple(float(s) for s in properties["spacing"])
    reference = reference[0]  # nnU-Net reads 2D images as (1, 1, y, x): one slice
    axis = slice_axis(spacing)
    volumes = CaseVolumes(case, _first(reference, axis), {}, tuple(spacing[i] for i in
                                                                    (axis, *[a for a in range(3) if a != axis])), axis)
    for model in models:
        path = model.files.get(case)
        if path is None or not Path(path).is_file():
            volumes.problems.append(f"{model.label}: no predicted file for {case}")
            continue
        predicted = reader.read_seg(str(path))[0][0]
        if predicted.shape != reference.shape:
            volumes.problems.append(f"{model.label}: prediction of {case} is {predicted.shape}, its reference "
                                    f"{reference.shape}")
            continue
        volumes.predictions[model.label] = _first(predicted, axis)
    image = split.images.get(case)
    if image is not None and Path(image).is_file():
        try:
            data = reader.read_images((str(image),))[0][0]
            if data.shape != reference.shape:
                raise ValueError(f"image {data.shape}, reference {reference.shape}")
            volumes.image = _first(data.astype(np.float32), axis)
        except (RuntimeError, ValueError, OSError) as error:  # unreadable: the outlines on a blank background
            volumes.problems.append(f"image not read ({type(error).__name__})")
    else:
        volumes.problems.append("no image file")
    return volumes


@dataclass
class ClassView:
    """One class in one case: boolean masks (S, R, C) of the reference and each model, and the voxels that count
    (not the ignore label)."""

    reference: np.ndarray
    predictions: dict[str, np.ndarray]
    valid: np.ndarray

    @classmethod
    def of(cls, volumes: CaseVolumes, value: int | tuple[int, ...], ignore: int | None) -> "ClassView":
        valid = np.ones(volumes.reference.shape, bool) if ignore is None else volumes.reference != ignore
        return cls(class_mask(volumes.reference, value) & valid,
                   {label: class_mask(p, value) & valid for label, p in volumes.predictions.items()}, valid)

    def slice_dice(self, label: str) -> np.ndarray:
        return per_slice_dice(self.reference, self.predictions[label])

    def case_dice(self, label: str) -> float:
        return dice(self.reference, self.predictions[label])


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """2 TP / (2 TP + FP + FN); NaN where both are empty."""
    tp, total = np.sum(reference & prediction), np.sum(reference) + np.sum(prediction)
    return float(2 * tp / total) if total else float("nan")


def per_slice_dice(reference: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Dice of each slice (axis 0); NaN on slices where both are empty."""
    axes = (1, 2)
    tp = np.sum(reference & prediction, axis=axes)
    total = np.sum(reference, axis=axes) + np.sum(prediction, axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * tp / np.maximum(total, 1), np.nan)


@dataclass(frozen=True)
class SliceCounts:
    holding: int  # slices whose reference holds the class
    missed: int  # of those, slices where the model predicts none of it
    painted: int  # slices without it in the reference where the model predicts it


def slice_counts(reference: np.ndarray, prediction: np.ndarray) -> SliceCounts:
    in_reference, in_prediction = reference.any(axis=(1, 2)), prediction.any(axis=(1, 2))
    return SliceCounts(int(in_reference.sum()), int(np.sum(in_reference & ~in_prediction)),
                       int(np.sum(~in_reference & in_prediction)))


def disagreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Voxels per slice where the two masks differ."""
    return np.sum(a ^ b, axis=(1, 2))


def choose_slice(view: ClassView, variant: str, baseline: str) -> int:
    """The slice where the two models disagree most; where they agree everywhere, the slice with most errors of
    any model against the reference; else the slice with most reference voxels (ties: the first slice)."""
    pair = [view.predictions[m] for m in (variant, baseline) if m in view.predictions]
    for counts in ([disagreement(*pair)] if len(pair) == 2 else []) + \
            [sum((disagreement(view.reference, p) for p in view.predictions.values()),
                 np.zeros(len(view.reference), int))]:
        if counts.max(initial=0) > 0:
            return int(np.argmax(counts))
    return int(np.argmax(view.reference.sum(axis=(1, 2))))


def choose_row(view: ClassView, variant: str, baseline: str, index: int) -> int:
    """The row (axis R) of slice ``index`` that the through-plane view cuts: the row where the two models disagree
    most; else where any model errs most; else the row with most reference voxels; else the middle row."""
    pair = [view.predictions[m][index] for m in (variant, baseline) if m in view.predictions]
    candidates = ([np.sum(pair[0] ^ pair[1], axis=1)] if len(pair) == 2 else []) + \
        [sum((np.sum(view.reference[index] ^ p[index], axis=1) for p in view.predictions.values()),
             np.zeros(view.reference.shape[1], int)), view.reference[index].sum(axis=1)]
    for counts in candidates:
        if counts.max(initial=0) > 0:
            return int(np.argmax(counts))
    return view.reference.shape[1] // 2


def window(image: np.ndarray, foreground: np.ndarray) -> tuple[float, float]:
    """Display range: the 0.5 and 99.5 percentiles of the image over the reference's foreground (nnU-Net's CT
    clipping; MRI alike, as it needs no units), widened by a quarter of their distance on each side; over the
    whole image where the foreground is empty or flat."""
    values = image[foreground] if foreground.any() else image.reshape(-1)
    low, high = np.percentile(values, WINDOW_PERCENTILES)
    if high <= low:
        low, high = np.percentile(image, WINDOW_PERCENTILES)
    if high <= low:
        return float(low) - 0.5, float(high) + 0.5
    margin = WINDOW_MARGIN * (high - low)
    return float(low - margin), float(high + margin)
