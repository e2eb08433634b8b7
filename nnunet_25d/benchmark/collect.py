"""Read a finished fold from nnU-Net's own files (validation ``summary.json``, checkpoint logging, training log)
and a variant's test-set predictions; score the surfaces of both; write and read the per-case CSV that the
benchmark's statistics are computed from."""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Sequence

from nnunet_25d.benchmark.cases import case_id
from nnunet_25d.benchmark.matrix import RESOURCES_FILE, Job
from nnunet_25d.benchmark.statistics import ENSEMBLE_FOLD, CaseScore
from nnunet_25d.benchmark.surface import scorer_for
from nnunet_25d.benchmark.comparison import count_parameters, seconds_per_epoch, training_curves
from nnunet_25d.inference.checkpoint_file import load_checkpoint_safely
from nnunet_25d.trainers.slab_trainer import VALIDATION_ENGINE_LINE

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
    engine: str = ""  # what ran the validation's network: "ONNX Runtime" (slab trainers on CPU) or "PyTorch"


def class_names(dataset_json: dict) -> dict[str, str]:
    """{"1": "tube", ...}: nnU-Net's label keys in summary.json -> the dataset's names."""
    names = {}
    for name, value in dataset_json["labels"].items():
        key = str(tuple(value)) if isinstance(value, (list, tuple)) else str(value)
        if key != "0":
            names[key] = name
    return names


def read_summary(path: Path, names: dict[str, str], variant: str = "", fold: int = 0, seed: int = 0
                 ) -> list[CaseScore]:
    """Every (case, class) of nnU-Net's ``metric_per_case``, with the voxel counts the absent/present rule needs."""
    scores = []
    for case in json.loads(path.read_text())["metric_per_case"]:
        for key, metrics in case["metrics"].items():
            if key in names:
                n_ref, n_pred = voxel_counts(metrics)
                scores.append(CaseScore(variant, fold, case_id(case["reference_file"]), names[key],
                                        float(metrics["Dice"]), n_ref, n_pred, seed=seed))
    return scores


def voxel_counts(metrics: dict) -> tuple[int, int]:
    """(n_ref, n_pred); from TP/FN/FP where a summary.json has no counts."""
    if "n_ref" in metrics and "n_pred" in metrics:
        return int(metrics["n_ref"]), int(metrics["n_pred"])
    return int(metrics["TP"] + metrics["FN"]), int(metrics["TP"] + metrics["FP"])


def validation_engine(fold_folder: Path) -> str:
    """What ran the final validation's network, from the newest training log that says (the plugin's trainers log
    it); "PyTorch" for nnU-Net's own trainers."""
    logs = sorted(fold_folder.glob("training_log_*.txt"), key=lambda log: log.stat().st_mtime)
    for log in reversed(logs):
        said = [line.split(VALIDATION_ENGINE_LINE, 1)[1].strip() for line in log.open()
                if VALIDATION_ENGINE_LINE in line]
        if said:
            return said[-1]
    return "PyTorch"


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


@dataclass(frozen=True)
class Scoring:
    """What the predictions are scored against beside nnU-Net's Dice: the references of the validation cases and
    the NSD tolerance(s) in mm (``--nsd-tolerance``: one for all classes or one per class)."""

    references: Path  # nnUNet_preprocessed/DatasetXXX/gt_segmentations, what nnU-Net's validation compared with
    tolerances_mm: tuple[float, ...] | None = None  # None: surface.DEFAULT_TOLERANCE_MM


def with_surfaces(cases: list[CaseScore], dataset_json: dict, predictions: Path, references: Path,
                  tolerances_mm: Sequence[float] | None) -> list[CaseScore]:
    """The cases with HD95 and NSD from the predicted and reference label images."""
    scorer = scorer_for(dataset_json, tolerances_mm)
    surfaces = scorer.score(list(dict.fromkeys(c.case for c in cases)), predictions, references)
    return [replace(c, hd95=surfaces[c.case][c.class_name].hd95, nsd=surfaces[c.case][c.class_name].nsd,
                    nsd_tolerance_mm=scorer.tolerances_mm[c.class_name]) for c in cases]


def collect_fold(job: Job, scoring: Scoring) -> FoldResult:
    folder = job.fold_folder
    dataset_json = json.loads((job.model_folder / "dataset.json").read_text())
    cases = read_summary(folder / "validation" / "summary.json", class_names(dataset_json), job.variant.key, job.fold,
                         job.variant.seed)
    cases = with_surfaces(cases, dataset_json, folder / "validation", scoring.references, scoring.tolerances_mm)
    checkpoint = load_checkpoint_safely(folder / "checkpoint_final.pth")  # runs nothing a checkpoint holds
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
        engine=validation_engine(folder),
    )


def collect_test(variant_key: str, predictions: Path, references: Path, scoring: Scoring, seed: int = 0
                 ) -> list[CaseScore]:
    """The test cases of one variant's fold ensemble: nnU-Net's Dice from ``summary.json`` that
    ``nnUNetv2_evaluate_folder`` wrote into the prediction folder, surfaces against ``labelsTs``."""
    dataset_json = json.loads((predictions / "dataset.json").read_text())
    cases = [replace(c, split="test") for c in read_summary(predictions / "summary.json", class_names(dataset_json),
                                                              variant_key, ENSEMBLE_FOLD, seed)]
    return with_surfaces(cases, dataset_json, predictions, references, scoring.tolerances_mm)


CASE_COLUMNS = ["variant", "split", "fold", "case", "class", "dice", "hd95", "nsd", "n_ref", "n_pred",
                "nsd_tolerance_mm", "seed"]


def _number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _read_number(text: str) -> float:
    return float(text) if text else float("nan")


def write_cases_csv(scores: list[CaseScore], path: Path) -> None:
    """One row per variant x split x fold x case x class: nnU-Net's Dice, HD95 (mm) and NSD (empty where undefined:
    reference and prediction both empty), the voxel counts, the NSD tolerance (mm), the seeded repeat. Test rows have
    fold -1."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CASE_COLUMNS)
        for s in scores:
            writer.writerow([s.variant, s.split, s.fold, s.case, s.class_name, _number(s.dice), _number(s.hd95),
                             _number(s.nsd), s.n_ref, s.n_pred, _number(s.nsd_tolerance_mm), s.seed])


def read_cases_csv(path: Path) -> list[CaseScore]:
    with open(path, newline="") as f:
        return [CaseScore(row["variant"], int(row["fold"]), row["case"], row["class"], _read_number(row["dice"]),
                          int(row["n_ref"]), int(row["n_pred"]), _read_number(row["hd95"]),
                          _read_number(row["nsd"]), row["split"], _read_number(row["nsd_tolerance_mm"]),
                          int(row.get("seed") or 0))
                for row in csv.DictReader(f)]
