"""The benchmark matrix: (trainer, configuration) variants x folds, and the nnU-Net command of each job."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from nnunet_25d.benchmark.cases import case_id
from nnunet_25d.inference.checkpoint_file import is_readable_checkpoint

# nnU-Net's own trainers that the 2.5D variants must beat (the default of --baselines)
BASELINES = (("nnUNetTrainer", "2d"), ("nnUNetTrainer", "3d_fullres"))
RESOURCES_FILE = "benchmark_resources.json"


@dataclass(frozen=True)
class Variant:
    trainer: str  # base name, without a schedule suffix
    configuration: str
    schedule: tuple[int, int] | None = None  # (epochs, iterations) of a CPU schedule, None = the trainer's own
    seed: int = 0  # the seeded repeat (0: the plain trainer; N: <trainer>_seedN)

    @property
    def trainer_name(self) -> str:
        """The name nnUNetv2_train gets (with the schedule suffix, then the seed's)."""
        from nnunet_25d.trainers.seeds import seeded_name  # imports nnU-Net: too slow for the fold probe
        from nnunet_25d.trainers.variants import schedule_name

        name = self.trainer if self.schedule is None else schedule_name(self.trainer, *self.schedule)
        return seeded_name(name, self.seed)

    @property
    def label(self) -> str:
        return f"{self.trainer} {self.configuration}"

    @property
    def run_label(self) -> str:
        """The label of this repeat: the model's, with its seed where there is one."""
        return self.label + (f" seed {self.seed}" if self.seed else "")

    @property
    def key(self) -> str:
        """``TRAINER:CONFIGURATION``, as --variants spells it (the per-case CSV's variant column)."""
        return f"{self.trainer}:{self.configuration}"

    @property
    def epochs(self) -> int | None:
        return None if self.schedule is None else self.schedule[0]


def parse_variant(text: str, default_configuration: str = "2d") -> tuple[str, str]:
    """``TRAINER[:CONFIGURATION]`` -> (trainer, configuration)."""
    trainer, _, configuration = text.partition(":")
    if not trainer:
        raise ValueError(f"variant {text!r} names no trainer; write TRAINER or TRAINER:CONFIGURATION")
    return trainer, configuration or default_configuration


def parse_model_pair(text: str) -> tuple[str, str]:
    """``TRAINER:CONFIGURATION`` (both required) -> (trainer, configuration)."""
    trainer, _, configuration = text.partition(":")
    if not trainer or not configuration:
        raise ValueError(f"expected TRAINER:CONFIGURATION, got {text!r}")
    return trainer, configuration


@dataclass(frozen=True)
class Job:
    """One nnUNetv2_train run: a variant on a fold of a dataset."""

    variant: Variant
    fold: int
    dataset_id: str
    model_root: Path  # nnUNet_results/DatasetXXX_Name
    plans: str = "nnUNetPlans"
    splits_file: Path | None = None  # nnUNet_preprocessed/DatasetXXX_Name/splits_final.json
    num_gpus: int = 1  # nnUNetv2_train -num_gpus (DDP) when more than one

    @property
    def model_folder(self) -> Path:
        return self.model_root / f"{self.variant.trainer_name}__{self.plans}__{self.variant.configuration}"

    @property
    def fold_folder(self) -> Path:
        return self.model_folder / f"fold_{self.fold}"

    @property
    def name(self) -> str:
        return f"{self.variant.trainer_name}_{self.variant.configuration}_fold{self.fold}"

    @property
    def validation_folder(self) -> Path:
        return self.fold_folder / "validation"

    @property
    def finished(self) -> bool:
        """Trained and validated with ``--npz`` (what find_best_configuration and ensembling need)."""
        return self.mode == "done"

    @property
    def started(self) -> bool:
        return self.mode in ("resume", "validate")

    @property
    def mode(self) -> str:
        return fold_mode(self.fold_folder, self.fold, self.splits_file)

    @property
    def checkpoint_in_use(self) -> Path | None:
        """The checkpoint nnU-Net's ``--c`` / ``--val`` would load (final, else latest, else best), or None."""
        return checkpoint_in_use(self.fold_folder)

    def train_args(self, device: str, mode: str | None = None, num_gpus: int | None = None) -> list[str]:
        """nnUNetv2_train arguments for ``mode`` (default: the fold's current one); always ``--npz``."""
        mode = mode or self.mode
        num_gpus = num_gpus or self.num_gpus
        args = ["nnUNetv2_train", self.dataset_id, self.variant.configuration, str(self.fold),
                "-tr", self.variant.trainer_name, "-p", self.plans, "-device", device, "--npz"]
        if num_gpus > 1:
            args += ["-num_gpus", str(num_gpus)]
        return args + {"resume": ["--c"], "validate": ["--val"]}.get(mode, [])

    def measured_args(self, device: str, mode: str | None = None, python: str = sys.executable,
                      num_gpus: int | None = None) -> list[str]:
        """The same command, run through :mod:`nnunet_25d.benchmark.measure` to record peak memory."""
        return [python, "-m", "nnunet_25d.benchmark.measure", "--record", str(self.fold_folder / RESOURCES_FILE),
                "--", *self.train_args(device, mode, num_gpus)]


def validation_cases(fold: int, splits_file: Path | None, summary_file: Path) -> list[str]:
    """The fold's validation cases: its ``val`` keys in splits_final.json, else the cases summary.json lists."""
    if splits_file is not None and splits_file.is_file():
        splits = json.loads(splits_file.read_text())
        if fold < len(splits):
            return list(splits[fold]["val"])
    return [case_id(c["reference_file"]) for c in json.loads(summary_file.read_text())["metric_per_case"]]


def validated(fold_folder: Path, fold: int, splits_file: Path | None) -> bool:
    """Every validation case has its .npz, and summary.json was written after all of them and after the final
    checkpoint (a fold trained again since is validated again)."""
    validation = fold_folder / "validation"
    summary = validation / "summary.json"
    if not summary.is_file():
        return False
    npz = [validation / f"{case}.npz" for case in validation_cases(fold, splits_file, summary)]
    if not npz or not all(path.is_file() for path in npz):
        return False
    newest = max(path.stat().st_mtime for path in [*npz, fold_folder / "checkpoint_final.pth"] if path.is_file())
    return summary.stat().st_mtime >= newest


CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")  # the order --c tries them


def checkpoint_in_use(fold_folder: Path) -> Path | None:
    """The first of :data:`CHECKPOINTS` that exists: what nnU-Net's ``--c`` loads (``--val``: the final one)."""
    return next((fold_folder / name for name in CHECKPOINTS if (fold_folder / name).exists()), None)


def fold_mode(fold_folder: Path, fold: int, splits_file: Path | None = None) -> str:
    """done | validate (final checkpoint; validation, a case's .npz or its summary missing or stale) |
    resume (checkpoint_latest, or only checkpoint_best: nnU-Net's --c falls back to it) | train |
    corrupt (the checkpoint nnU-Net would load cannot be read: neither scored nor retrained or resumed over, the
    user decides)."""
    checkpoint = checkpoint_in_use(fold_folder)
    if checkpoint is None:
        return "train"
    if not is_readable_checkpoint(checkpoint):
        return "corrupt"
    if checkpoint.name == "checkpoint_final.pth":
        return "done" if validated(fold_folder, fold, splits_file) else "validate"
    return "resume"


def build_jobs(variants: list[Variant], folds: list[int], dataset_id: str, model_root: Path,
               plans: str = "nnUNetPlans", splits_file: Path | None = None, seeds: int = 1) -> list[Job]:
    """Variant-major order: all folds of a variant's first seed, then of its next seed, before the next variant."""
    return [Job(replace(v, seed=seed), f, dataset_id, model_root, plans, splits_file)
            for v in variants for seed in range(seeds) for f in folds]
