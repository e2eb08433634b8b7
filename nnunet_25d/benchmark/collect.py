"""Read a finished fold from nnU-Net's own files: validation ``summary.json``, checkpoint logging, training log;
the per-case CSV that the benchmark's statistics are computed from."""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch

from nnunet_25d.benchmark.matrix import RESOURCES_FILE, Job
from nnunet_25d.benchmark.statistics import CaseScore
from nnunet_25d.comparison import count_parameters, seconds_per_epoch, training_curves

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+): (predicting \S+|Validation complete)")


@dataclass
class FoldResult:
    job: Job
    cases: list[CaseScore]
    seconds_per_epoch: float
    seconds_per_case: float  # validation inference (sliding window, TTA, export) from the training log
    parameters: int
    peak_memory_mib: float | None  # from the benchmark's measured run; None for trainings run elsewhere
    curves: dict[str, list[float]] = field(default_factory=dict)


def class_names(dataset_json: dict) -> dict[str, str]:
    """{"1": "tube", ...}: nnU-Net's label keys in summary.json -> the dataset's names."""
    names = {}
    for name, value in dataset_json["labels"].items():
        key = str(tuple(value)) if isinstance(value, (list, tuple)) else str(value)
        if key != "0":
            names[key] = name
    return names


def case_id(file_name: str) -> str:
    name = Path(file_name).name
    for ending in (".nii.gz", ".nrrd", ".mha", ".nii", ".png", ".tif", ".tiff"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return name.rsplit(".", 1)[0]


def read_summary(path: Path, names: dict[str, str], variant: str = "", fold: int = 0) -> list[CaseScore]:
    """Every (case, class) of nnU-Net's ``metric_per_case``, with the voxel counts the absent/present rule needs."""
    scores = []
    for case in json.loads(path.read_text())["metric_per_case"]:
        for key, metrics in case["metrics"].items():
            if key in names:
                n_ref, n_pred = voxel_counts(metrics)
                scores.append(CaseScore(variant, fold, case_id(case["reference_file"]), names[key],
                                        float(metrics["Dice"]), n_ref, n_pred))
    return scores


def voxel_counts(metrics: dict) -> tuple[int, int]:
    """(n_ref, n_pred); from TP/FN/FP where a summary.json has no counts."""
    if "n_ref" in metrics and "n_pred" in metrics:
        return int(metrics["n_ref"]), int(metrics["n_pred"])
    return int(metrics["TP"] + metrics["FN"]), int(metrics["TP"] + metrics["FP"])


def validation_seconds_per_case(fold_folder: Path) -> float:
    """From the newest training log: (validation end - first 'predicting') / number of cases predicted."""
    logs = sorted(fold_folder.glob("training_log_*.txt"), key=lambda log: log.stat().st_mtime)
    for log in reversed(logs):
        stamps = [(datetime.fromisoformat(m.group(1)), m.group(2)) for m in map(LOG_TIME.match, log.open())
                  if m is not None]
        predicted = [t for t, what in stamps if what.startswith("predicting")]
        done = [t for t, what in stamps if what == "Validation complete"]
        if predicted and done:
            return (done[-1] - predicted[0]).total_seconds() / len(predicted)
    return float("nan")


def collect_fold(job: Job) -> FoldResult:
    folder = job.fold_folder
    names = class_names(json.loads((job.model_folder / "dataset.json").read_text()))
    cases = read_summary(folder / "validation" / "summary.json", names, job.variant.key, job.fold)
    checkpoint = torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    resources_file = folder / RESOURCES_FILE
    resources = json.loads(resources_file.read_text()) if resources_file.exists() else {}
    return FoldResult(
        job=job,
        cases=cases,
        seconds_per_epoch=seconds_per_epoch(checkpoint),
        seconds_per_case=validation_seconds_per_case(folder),
        parameters=count_parameters(checkpoint),
        peak_memory_mib=resources.get("peak_gpu_memory_mib", resources.get("peak_host_memory_mib")),
        curves=training_curves(checkpoint),
    )


CASE_COLUMNS = ["variant", "fold", "case", "class", "dice", "n_ref", "n_pred"]


def write_cases_csv(scores: list[CaseScore], path: Path) -> None:
    """One row per variant x fold x case x class: nnU-Net's Dice (empty where undefined) and the voxel counts."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CASE_COLUMNS)
        for s in scores:
            writer.writerow([s.variant, s.fold, s.case, s.class_name, "" if math.isnan(s.dice) else repr(s.dice),
                             s.n_ref, s.n_pred])


def read_cases_csv(path: Path) -> list[CaseScore]:
    with open(path, newline="") as f:
        return [CaseScore(row["variant"], int(row["fold"]), row["case"], row["class"],
                          float(row["dice"]) if row["dice"] else float("nan"), int(row["n_ref"]), int(row["n_pred"]))
                for row in csv.DictReader(f)]
