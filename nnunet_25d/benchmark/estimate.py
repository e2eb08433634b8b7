"""What a benchmark run will cost, from what earlier runs recorded: the wall time of the folds still to train (from
the finished folds of the same variants) and the memory of predicting the largest case."""
from __future__ import annotations

import json
import math
from pathlib import Path

from nnunet_25d.benchmark.matrix import RESOURCES_FILE, Job
from nnunet_25d.benchmark.preflight import GIB

# nnU-Net's predictor on the CPU per voxel: float16 logits and their count per class, then float32 probabilities at
# export (6 bytes per class); the image (4 bytes per channel); the process itself. Calibrated on nnU-Net 2d's
# nnUNetv2_predict at 512 x 512 x 300 with 8 classes: 5.0 GB measured (benchmarks/clinical_scale.py), 4.8 estimated.
BYTES_PER_CLASS_VOXEL = 6
BYTES_PER_CHANNEL_VOXEL = 4
PROCESS_GIB = 1.0


def recorded_wall_seconds(job: Job) -> float | None:
    path = job.fold_folder / RESOURCES_FILE
    if not path.is_file():
        return None
    try:
        return float(json.loads(path.read_text())["wall_seconds"])
    except (ValueError, KeyError, TypeError):
        return None


def remaining_training(jobs: list[Job]) -> tuple[float | None, str]:
    """(seconds, what the figure is based on) for the jobs still to train; None where no variant has a timing."""
    modes = {job: job.mode for job in jobs}  # each reads the fold's files
    todo = [job for job in jobs if modes[job] not in ("done", "corrupt")]
    if not todo:
        return 0.0, "every fold is trained"
    timed: dict = {}
    for job in jobs:
        seconds = recorded_wall_seconds(job) if modes[job] == "done" else None
        if seconds is not None:
            timed.setdefault(job.variant, []).append(seconds)
    known = [sum(timed[job.variant]) / len(timed[job.variant]) for job in todo if job.variant in timed]
    if not known:
        return None, (f"{len(todo)} runs to train, no finished fold of their variants timed yet; the progress bar's "
                      f"ETA follows the first run")
    basis = f"{len(known)} of {len(todo)} runs to train, from the finished folds of their variants"
    if len(known) < len(todo):
        basis += f"; {len(todo) - len(known)} runs of variants without a timed fold not included"
    return sum(known), basis


def largest_case_voxels(fingerprint: dict, transpose: list[int], target_spacing: list[float] | None) -> float:
    """The most voxels of one case after resampling to ``target_spacing`` (the plans' axis order, ``transpose``
    applied; a 2d spacing resamples in-plane only; None: as cropped)."""
    most = 0.0
    for shape, spacing in zip(fingerprint["shapes_after_crop"], fingerprint["spacings"]):
        spacing = [spacing[axis] for axis in transpose]
        scale = 1.0 if target_spacing is None else math.prod(
            s / t for s, t in zip(spacing[-len(target_spacing):], target_spacing))
        most = max(most, math.prod(shape) * scale)
    return most


def prediction_memory_gib(preprocessed_dataset: Path, plans: str, configurations: list[str]) -> float | None:
    """Host memory to predict the largest case with any of ``configurations``; None before planning."""
    files = [preprocessed_dataset / name for name in ("dataset_fingerprint.json", f"{plans}.json", "dataset.json")]
    if not all(f.is_file() for f in files):
        return None
    fingerprint, plans_json, dataset = (json.loads(f.read_text()) for f in files)
    channels = len(dataset.get("channel_names", dataset.get("modality", {"0": ""})))
    transpose = plans_json["transpose_forward"]
    voxels = max(largest_case_voxels(fingerprint, transpose, plans_json["configurations"].get(name, {}).get("spacing"))
                 for name in configurations)
    bytes_per_voxel = len(dataset["labels"]) * BYTES_PER_CLASS_VOXEL + channels * BYTES_PER_CHANNEL_VOXEL
    return voxels * bytes_per_voxel / GIB + PROCESS_GIB
