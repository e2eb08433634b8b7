"""The test set (``imagesTs``/``labelsTs`` of the raw dataset): each variant's ensemble of the benchmarked folds
predicts it with ``nnUNetv2_predict -f ...``, ``nnUNetv2_evaluate_folder`` scores it (nnU-Net's Dice, as in
cross-validation). Predictions resume: a complete, up-to-date folder is skipped, a partial one continues."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nnunet_25d.benchmark.matrix import Variant
from nnunet_25d.predict.command import PREDICT_COMMAND
from nnunet_25d.benchmark.runner import CommandFailed, NNUNetRunner

PREDICTIONS_FOLDER = "test_predictions"  # in the report folder, one sub-folder per model
RECORD_FILE = "benchmark_prediction.json"  # which folds predicted the folder (nnU-Net does not record them)


@dataclass(frozen=True)
class TestSet:
    __test__ = False  # not a pytest test class

    images: Path  # nnUNet_raw/DatasetXXX/imagesTs
    labels: Path  # nnUNet_raw/DatasetXXX/labelsTs
    file_ending: str
    cases: tuple[str, ...]


def image_cases(images: Path, file_ending: str) -> set[str]:
    """Case identifiers of ``CASE_XXXX<file_ending>`` files, as nnUNetv2_predict finds them."""
    suffix_length = len("_0000") + len(file_ending)
    return {p.name[:-suffix_length] for p in images.iterdir() if p.name.endswith(file_ending)
            and len(p.name) > suffix_length and p.name[-suffix_length:-len(file_ending)][1:].isdigit()}


def label_cases(labels: Path, file_ending: str) -> set[str]:
    return {p.name[:-len(file_ending)] for p in labels.iterdir() if p.name.endswith(file_ending)}


def find_test_set(raw_dataset: Path, dataset_json: dict) -> tuple[TestSet | None, str]:
    """The dataset's test set, or None and why not (no folders, no labels, images and labels that differ)."""
    images, labels, ending = raw_dataset / "imagesTs", raw_dataset / "labelsTs", dataset_json["file_ending"]
    if not images.is_dir() or not labels.is_dir():
        return None, f"{raw_dataset.name} has no imagesTs and labelsTs"
    with_images, with_labels = image_cases(images, ending), label_cases(labels, ending)
    if not with_labels:
        return None, f"{labels} holds no *{ending} labels"
    if with_images != with_labels:
        unlabelled, imageless = sorted(with_images - with_labels), sorted(with_labels - with_images)
        problem = (f"{len(unlabelled)} test images without labels (e.g. {unlabelled[0]})" if unlabelled else
                   f"{len(imageless)} test labels without images (e.g. {imageless[0]})")
        return None, f"{problem} in {raw_dataset}: imagesTs and labelsTs must hold the same cases"
    return TestSet(images, labels, ending, tuple(sorted(with_labels))), ""


@dataclass(frozen=True)
class EnsemblePrediction:
    """One variant's test-set prediction by the ensemble of its folds (nnU-Net averages their softmax)."""

    variant: Variant
    folds: tuple[int, ...]
    model_folder: Path  # nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION
    folder: Path  # where the predictions go: <report folder>/test_predictions/<model folder name>
    test_set: TestSet
    dataset_id: str
    plans: str = "nnUNetPlans"

    @property
    def name(self) -> str:
        return f"{self.variant.trainer_name}_{self.variant.configuration}_test"

    @property
    def predictions(self) -> list[Path]:
        """Each case's segmentation and its probabilities (``.npz``, what nnUNetv2_ensemble reads)."""
        return [self.folder / f"{case}{ending}" for case in self.test_set.cases
                for ending in (self.test_set.file_ending, ".npz")]

    @property
    def summary_file(self) -> Path:
        return self.folder / "summary.json"

    def _recorded_folds(self) -> list[int] | None:
        record = self.folder / RECORD_FILE
        return json.loads(record.read_text()).get("folds") if record.is_file() else None

    @property
    def mode(self) -> str:
        """done (every case predicted after the folds' final checkpoints, by these folds) | continue (some are) |
        predict (none, or stale: other folds, or a fold trained again since)."""
        if self._recorded_folds() != list(self.folds):
            return "predict"
        existing = [p for p in self.predictions if p.is_file()]
        checkpoints = [self.model_folder / f"fold_{f}" / "checkpoint_final.pth" for f in self.folds]
        newest_checkpoint = max((c.stat().st_mtime for c in checkpoints if c.is_file()), default=0.0)
        if any(p.stat().st_mtime < newest_checkpoint for p in existing):
            return "predict"
        return "done" if len(existing) == len(self.predictions) else "continue"

    @property
    def evaluated(self) -> bool:
        """nnU-Net's summary.json is newer than every prediction."""
        if not self.summary_file.is_file() or self.mode != "done":
            return False
        segmentations = [p for p in self.predictions if p.name.endswith(self.test_set.file_ending)]
        return self.summary_file.stat().st_mtime >= max(p.stat().st_mtime for p in segmentations)

    def predict_args(self, device: str, mode: str | None = None) -> list[str]:
        args = [*PREDICT_COMMAND, "-i", str(self.test_set.images), "-o", str(self.folder), "-d", self.dataset_id,
                "-c", self.variant.configuration, "-tr", self.variant.trainer_name, "-p", self.plans,
                "-f", *map(str, self.folds), "-device", device]
        if device == "cpu":
            args += ["-npp", "1", "-nps", "1"]
        args.append("--save_probabilities")  # find_best's recommended ensemble is built from them
        return args + (["--continue_prediction"] if (mode or self.mode) == "continue" else [])

    def evaluate_args(self) -> list[str]:
        """nnU-Net's evaluation with the dataset.json and plans.json that nnUNetv2_predict put next to the files."""
        return ["nnUNetv2_evaluate_folder", str(self.test_set.labels), str(self.folder), "-djfile",
                str(self.folder / "dataset.json"), "-pfile", str(self.folder / "plans.json"), "-o",
                str(self.summary_file)]

    def record(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / RECORD_FILE).write_text(json.dumps({"folds": list(self.folds)}))


def ensemble_predictions(variants: list[Variant], folds: list[int], model_folders: dict[Variant, Path],
                         test_set: TestSet, out_dir: Path, dataset_id: str, plans: str) -> list[EnsemblePrediction]:
    return [EnsemblePrediction(v, tuple(folds), model_folders[v], out_dir / PREDICTIONS_FOLDER / model_folders[v].name,
                               test_set, dataset_id, plans) for v in variants]


def predict_test_sets(runner: NNUNetRunner, predictions: list[EnsemblePrediction], device: str) -> list[str]:
    """Predict (or finish predicting) and evaluate each ensemble's test set; return a line per failure."""
    failures = []
    for prediction in predictions:
        label = f"{prediction.variant.run_label} test set (folds {' '.join(map(str, prediction.folds))})"
        mode = prediction.mode
        try:
            if mode == "done":
                print(f"{label}: prediction skipped (every case predicted)", flush=True)
            else:
                print(f"{label}: {'continuing the prediction' if mode == 'continue' else 'predicting'}", flush=True)
                prediction.record()
                runner.run(prediction.predict_args(device, mode), f"predict_{prediction.name}")
            if not prediction.evaluated:
                runner.run(prediction.evaluate_args(), f"evaluate_{prediction.name}")
        except CommandFailed as error:
            failures.append(f"{label} failed: {error.summary}")
            print(f"FAILED: {failures[-1]}", flush=True)
    return failures
