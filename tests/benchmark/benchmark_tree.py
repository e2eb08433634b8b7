"""Hand-built nnU-Net results trees for the benchmark's unit tests: the files nnUNetv2_train, nnUNetv2_predict and
nnUNetv2_evaluate_folder leave (summary.json, label images, checkpoints), no training."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from nnunet_25d.benchmark.matrix import Job, Variant
from nnunet_25d.benchmark.testset import EnsemblePrediction, TestSet

LABELS = {"background": 0, "organ": 1, "lesion": 2}
KEYS = {"organ": "1", "lesion": "2"}
DATASET_JSON = {"labels": LABELS, "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}
SHAPE = (4, 16, 16)  # z, y, x
SPACING = (3.0, 0.8, 0.8)  # mm, z, y, x
CLASS_SLICES = {"organ": 0, "lesion": 2}  # each class draws into two slices of its own (512 voxels)

# class -> (Dice, n_ref, n_pred) of one case
Outcome = tuple[float, int, int]


def dice_metrics(dice: float, n_ref: int, n_pred: int) -> dict:
    """nnU-Net's per-class metrics; TP is chosen to reproduce ``dice`` (NaN iff both are empty)."""
    tp = 0 if math.isnan(dice) else round(dice * (n_ref + n_pred) / 2)
    return {"Dice": dice, "n_ref": n_ref, "n_pred": n_pred, "TP": tp, "FP": n_pred - tp, "FN": n_ref - tp,
            "TN": 1000, "IoU": float("nan")}


def present(dice: float, voxels: int = 100) -> Outcome:
    return dice, voxels, voxels


ABSENT: Outcome = (float("nan"), 0, 0)  # empty reference, empty prediction
FALSE_POSITIVE: Outcome = (0.0, 0, 40)  # empty reference, the model paints the class


def label_images(classes: dict[str, Outcome]) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) label images with each class's n_ref / n_pred voxels overlapping in the TP that
    reproduces its Dice: the reference takes the first n_ref voxels of the class's slices (raster order), the
    prediction n_pred voxels starting n_ref - TP later."""
    reference, prediction = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    for name, outcome in classes.items():
        tp = dice_metrics(*outcome)["TP"]
        n_ref, n_pred = outcome[1], outcome[2]
        block_ref = reference[CLASS_SLICES[name]:CLASS_SLICES[name] + 2].reshape(-1)
        block_pred = prediction[CLASS_SLICES[name]:CLASS_SLICES[name] + 2].reshape(-1)
        block_ref[:n_ref] = LABELS[name]
        block_pred[n_ref - tp:n_ref - tp + n_pred] = LABELS[name]
    return reference, prediction


def write_image(array: np.ndarray, path: Path, spacing: tuple[float, ...] = SPACING) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(spacing)))  # SimpleITK: x, y, z
    sitk.WriteImage(image, str(path))


def gt_folder(fold_job: Job) -> Path:
    """nnUNet_preprocessed/DatasetXXX/gt_segmentations next to the job's nnUNet_results."""
    return fold_job.model_root.parent.parent / "preprocessed" / fold_job.model_root.name / "gt_segmentations"


def write_splits(preprocessed_dataset: Path, folds: list[list[str]]) -> Path:
    """splits_final.json: fold k validates ``folds[k]`` and trains on the rest."""
    everything = [case for fold in folds for case in fold]
    splits = [{"train": [c for c in everything if c not in val], "val": val} for val in folds]
    path = preprocessed_dataset / "splits_final.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(splits))
    return path


def fake_checkpoint(path: Path) -> None:
    logging = {"train_losses": [1.0, 0.8], "val_losses": [0.9, 0.7], "ema_fg_dice": [0.2, 0.4],
               "epoch_start_timestamps": [0.0, 10.0], "epoch_end_timestamps": [9.0, 19.0]}
    torch.save({"logging": logging, "network_weights": {"w": torch.zeros(5)}}, path)


def write_summary(path: Path, cases: dict[str, dict[str, Outcome]], predictions: Path) -> None:
    """nnU-Net's summary.json with per-case metrics reproducing the outcomes."""
    per_case = [{"reference_file": f"/gt/{case}.nii.gz", "prediction_file": f"{predictions}/{case}.nii.gz",
                 "metrics": {KEYS[name]: dice_metrics(*outcome) for name, outcome in classes.items()}}
                for case, classes in cases.items()]
    path.write_text(json.dumps({"metric_per_case": per_case, "mean": {}, "foreground_mean": {}}))


def write_cases(cases: dict[str, dict[str, Outcome]], predictions: Path, references: Path) -> None:
    for case, classes in cases.items():
        reference, prediction = label_images(classes)
        write_image(reference, references / f"{case}.nii.gz")
        write_image(prediction, predictions / f"{case}.nii.gz")


def write_fold(job: Job, cases: dict[str, dict[str, Outcome]], npz: list[str] | None = None) -> None:
    """A trained and validated fold: checkpoint_final, ``.npz`` of ``npz`` cases (default: all), the predicted
    and reference label images, summary.json."""
    folder = job.fold_folder
    (folder / "validation").mkdir(parents=True, exist_ok=True)
    (job.model_folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    fake_checkpoint(folder / "checkpoint_final.pth")
    write_cases(cases, folder / "validation", gt_folder(job))
    for case in cases if npz is None else npz:
        (folder / "validation" / f"{case}.npz").write_bytes(b"")
    write_summary(folder / "validation" / "summary.json", cases, folder / "validation")


def make_test_set(root: Path, cases: list[str]) -> TestSet:
    """imagesTs (empty files: nothing reads them here) and labelsTs folders of the raw dataset."""
    raw = root / "raw" / "Dataset999_Toy"
    for case in cases:
        (raw / "imagesTs").mkdir(parents=True, exist_ok=True)
        (raw / "imagesTs" / f"{case}_0000.nii.gz").write_bytes(b"")
    (raw / "labelsTs").mkdir(parents=True, exist_ok=True)
    return TestSet(raw / "imagesTs", raw / "labelsTs", ".nii.gz", tuple(cases))


def ensemble(fold_jobs: list[Job], test: TestSet, out_dir: Path) -> EnsemblePrediction:
    first = fold_jobs[0]
    return EnsemblePrediction(first.variant, tuple(j.fold for j in fold_jobs), first.model_folder,
                              out_dir / "test_predictions" / first.model_folder.name, test, first.dataset_id)


def write_test_prediction(prediction: EnsemblePrediction, cases: dict[str, dict[str, Outcome]]) -> None:
    """What nnUNetv2_predict (label images, probabilities, dataset.json) and nnUNetv2_evaluate_folder
    (summary.json) leave."""
    prediction.record()
    (prediction.folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    write_cases(cases, prediction.folder, prediction.test_set.labels)
    for case in cases:
        np.savez_compressed(prediction.folder / f"{case}.npz", probabilities=np.zeros((1, 1, 1, 1), np.float16))
    write_summary(prediction.summary_file, cases, prediction.folder)


def job(root: Path, trainer: str, configuration: str, fold: int, splits: Path | None = None) -> Job:
    return Job(Variant(trainer, configuration), fold, "999", root / "results" / "Dataset999_Toy", "nnUNetPlans",
               splits)


def toy_nnunet_folders(root: Path) -> dict[str, str]:
    """The environment of nnU-Net folders under ``root`` holding the raw ``Dataset999_Toy`` (its dataset.json only)."""
    import os

    env = dict(os.environ)
    for name, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"), ("nnUNet_results", "results")):
        (root / sub).mkdir(exist_ok=True)
        env[name] = str(root / sub)
    (root / "raw" / "Dataset999_Toy").mkdir()
    (root / "raw" / "Dataset999_Toy" / "dataset.json").write_text(json.dumps(DATASET_JSON))
    return env
