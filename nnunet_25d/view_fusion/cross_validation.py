"""Learned fusion of several models' cross-validation, nested by fold: the weights that fuse fold f's cases are
learned on the validation cases of the other folds only, then scored against nnU-Net's ``gt_segmentations``
beside softmax averaging."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from nnunet_25d.errors import UserError
from nnunet_25d.inference.model_folder import dataset_name
from nnunet_25d.view_fusion.learn import VoxelSample, learn_weights, sample_voxels
from nnunet_25d.view_fusion.weights import FusionWeights

FUSION_FILE = "fusion.json"


@dataclass(frozen=True)
class CrossValidation:
    """Where the models' ``--npz`` validation outputs and the references of one dataset lie."""

    model_folders: tuple[Path, ...]
    reference_folder: Path
    file_ending: str
    splits: list[dict]
    folds: tuple[int, ...]
    reader: Any  # the plans' image reader/writer (nnU-Net's BaseReaderWriter)

    def fold_cases(self, fold: int) -> list[str]:
        return sorted(self.splits[fold]["val"])

    def probabilities(self, fold: int, case: str) -> list[np.ndarray]:
        arrays = []
        for folder in self.model_folders:
            npz = folder / f"fold_{fold}" / "validation" / f"{case}.npz"
            if not npz.is_file():
                raise UserError(f"{npz} is missing: run `nnUNetv2_train ... {fold} --val --npz` for {folder.name}")
            arrays.append(np.load(npz)["probabilities"].astype(np.float32))
        return arrays

    def reference(self, case: str) -> np.ndarray:
        segmentation, _ = self.reader.read_seg(str(self.reference_folder / f"{case}{self.file_ending}"))
        return segmentation[0]

    def cases(self) -> Iterator[tuple[int, str]]:
        for fold in self.folds:
            for case in self.fold_cases(fold):
                yield fold, case


def nested_weights(samples: dict[tuple[int, str], VoxelSample], folds: tuple[int, ...]) -> dict[int, np.ndarray]:
    """For every fold: weights learned on the cases of the other folds (never on a case it will fuse)."""
    if len(folds) < 2:
        raise UserError("learned fusion is nested by fold and needs the validation outputs of at least two folds "
                        "(e.g. -f 0 1 2 3 4)")
    return {fold: learn_weights([s for (f, _), s in samples.items() if f != fold]) for fold in folds}


def dice_per_class(prediction: np.ndarray, reference: np.ndarray, classes: range) -> list[float]:
    """Dice per foreground class; NaN when reference and prediction are both empty (nnU-Net's rule), so a false
    positive on an empty reference scores 0."""
    scores = []
    for k in classes:
        ours, theirs = prediction == k, reference == k
        denominator = ours.sum() + theirs.sum()
        scores.append(float("nan") if denominator == 0 else 2.0 * np.logical_and(ours, theirs).sum() / denominator)
    return scores


def run_cross_validation(cv: CrossValidation, models: tuple[str, ...], out: Path) -> dict:
    """Learn (nested), score learned vs averaging per case, write ``fusion.json`` (weights learned on every fold,
    for test time) and ``cv_dice.csv``; returns the mean Dice per class of both."""
    samples = {(fold, case): sample_voxels(case, cv.probabilities(fold, case), cv.reference(case))
               for fold, case in tqdm(list(cv.cases()), desc="sampling validation cases", unit="case")}
    per_fold = nested_weights(samples, cv.folds)
    n_classes = next(iter(per_fold.values())).shape[1]
    averaging = FusionWeights.averaging(models, n_classes)
    rows = []
    for fold, case in tqdm(list(cv.cases()), desc="scoring learned vs averaging", unit="case"):
        probabilities, reference = cv.probabilities(fold, case), cv.reference(case)
        learned = FusionWeights(models, per_fold[fold])
        for name, weights in (("learned", learned), ("averaging", averaging)):
            prediction = weights.fuse(probabilities).argmax(0)
            for k, dice in zip(range(1, n_classes), dice_per_class(prediction, reference, range(1, n_classes))):
                rows.append({"fold": fold, "case": case, "class": k, "fusion": name, "dice": dice})
    out.mkdir(parents=True, exist_ok=True)
    final = FusionWeights(models, learn_weights(list(samples.values())))
    final.to_json(out / FUSION_FILE, folds=list(cv.folds),
                  weights_per_scored_fold={str(f): w.round(6).tolist() for f, w in per_fold.items()})
    with (out / "cv_dice.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["fold", "case", "class", "fusion", "dice"])
        writer.writeheader()
        writer.writerows(rows)
    return mean_dice(rows)


def mean_dice(rows: list[dict]) -> dict[str, dict[int, float]]:
    """{fusion: {class: mean Dice over the cases where it is defined}}."""
    means: dict[str, dict[int, float]] = {}
    for name in sorted({r["fusion"] for r in rows}):
        for k in sorted({r["class"] for r in rows}):
            values = [r["dice"] for r in rows if r["fusion"] == name and r["class"] == k and not np.isnan(r["dice"])]
            means.setdefault(name, {})[k] = float(np.mean(values)) if values else float("nan")
    return means


def load_cross_validation(dataset: str, models: list[tuple[str, str]], folds: list[int],
                          plans: str = "nnUNetPlans") -> tuple[CrossValidation, tuple[str, ...], Path]:
    """The dataset's CV outputs of ``models`` (trainer, configuration) and the default output folder."""
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_25d.view_fusion.ensemble_cv import ensemble_name

    name = dataset_name(dataset)
    identifiers = tuple(f"{trainer}__{plans}__{configuration}" for trainer, configuration in models)
    folders = tuple(Path(nnUNet_results) / name / identifier for identifier in identifiers)
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise UserError(f"not trained: {', '.join(missing)}; train every fold with `nnUNetv2_train ... --npz`")
    preprocessed = Path(nnUNet_preprocessed) / name
    splits_file = preprocessed / "splits_final.json"
    if not splits_file.is_file():
        raise UserError(f"{splits_file} is missing: nnU-Net writes it when the first fold trains")
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    if any(isinstance(v, (list, tuple)) for v in dataset_json["labels"].values()):
        raise UserError("learned fusion supports label datasets, not region-based ones")
    reader = PlansManager(str(folders[0] / "plans.json")).image_reader_writer_class()
    cv = CrossValidation(folders, preprocessed / "gt_segmentations", dataset_json["file_ending"],
                         json.loads(splits_file.read_text()), tuple(folds), reader)
    out = Path(nnUNet_results) / name / "view_fusion" / ensemble_name(list(identifiers), folds).replace(
        "ensemble___", "fusion___", 1)
    return cv, identifiers, out
