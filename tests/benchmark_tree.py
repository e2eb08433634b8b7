"""Hand-built nnU-Net results trees for the benchmark's unit tests: the files nnUNetv2_train leaves, no training."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from nnunet_25d.benchmark.matrix import Job, Variant

LABELS = {"background": 0, "organ": 1, "lesion": 2}
KEYS = {"organ": "1", "lesion": "2"}

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


def write_fold(job: Job, cases: dict[str, dict[str, Outcome]], npz: list[str] | None = None) -> None:
    """A trained and validated fold: checkpoint_final, ``.npz`` of ``npz`` cases (default: all), summary.json."""
    folder = job.fold_folder
    (folder / "validation").mkdir(parents=True, exist_ok=True)
    (job.model_folder / "dataset.json").write_text(json.dumps({"labels": LABELS}))
    fake_checkpoint(folder / "checkpoint_final.pth")
    for case in cases if npz is None else npz:
        (folder / "validation" / f"{case}.npz").write_bytes(b"")
    per_case = [{"reference_file": f"/gt/{case}.nii.gz", "prediction_file": f"{folder}/validation/{case}.nii.gz",
                 "metrics": {KEYS[name]: dice_metrics(*outcome) for name, outcome in classes.items()}}
                for case, classes in cases.items()]
    summary = {"metric_per_case": per_case, "mean": {}, "foreground_mean": {}}
    (folder / "validation" / "summary.json").write_text(json.dumps(summary))


def job(root: Path, trainer: str, configuration: str, fold: int, splits: Path | None = None) -> Job:
    return Job(Variant(trainer, configuration), fold, "999", root / "results" / "Dataset999_Toy", "nnUNetPlans",
               splits)
