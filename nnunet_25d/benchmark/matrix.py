"""The benchmark matrix: (trainer, configuration) variants x folds, and the nnU-Net command of each job."""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from nnunet_25d.training.variants import schedule_name

# nnU-Net's own trainers that the 2.5D variants must beat
BASELINES = (("nnUNetTrainer", "2d"), ("nnUNetTrainer", "3d_fullres"))
RESOURCES_FILE = "benchmark_resources.json"


@dataclass(frozen=True)
class Variant:
    trainer: str  # base name, without a schedule suffix
    configuration: str
    schedule: tuple[int, int] | None = None  # (epochs, iterations) of a CPU schedule, None = the trainer's own

    @property
    def trainer_name(self) -> str:
        """The name nnUNetv2_train gets (with the schedule suffix)."""
        return self.trainer if self.schedule is None else schedule_name(self.trainer, *self.schedule)

    @property
    def label(self) -> str:
        return f"{self.trainer} {self.configuration}"

    @property
    def is_baseline(self) -> bool:
        return (self.trainer, self.configuration) in BASELINES

    @property
    def epochs(self) -> int | None:
        return None if self.schedule is None else self.schedule[0]


def parse_variant(text: str, default_configuration: str = "2d") -> tuple[str, str]:
    """``TRAINER[:CONFIGURATION]`` -> (trainer, configuration)."""
    trainer, _, configuration = text.partition(":")
    if not trainer:
        raise ValueError(f"variant {text!r} names no trainer; write TRAINER or TRAINER:CONFIGURATION")
    return trainer, configuration or default_configuration


@dataclass(frozen=True)
class Job:
    """One nnUNetv2_train run: a variant on a fold of a dataset."""

    variant: Variant
    fold: int
    dataset_id: str
    model_root: Path  # nnUNet_results/DatasetXXX_Name
    plans: str = "nnUNetPlans"

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
    def finished(self) -> bool:
        return (self.fold_folder / "checkpoint_final.pth").exists() and \
            (self.fold_folder / "validation" / "summary.json").exists()

    @property
    def started(self) -> bool:
        return any((self.fold_folder / name).exists() for name in ("checkpoint_latest.pth", "checkpoint_final.pth"))

    def train_args(self, device: str, resume: bool | None = None) -> list[str]:
        """nnUNetv2_train arguments (with ``--npz`` for ensembling; ``--c`` when a checkpoint exists)."""
        args = ["nnUNetv2_train", self.dataset_id, self.variant.configuration, str(self.fold),
                "-tr", self.variant.trainer_name, "-p", self.plans, "-device", device, "--npz"]
        if resume if resume is not None else self.started:
            args.append("--c")
        return args

    def measured_args(self, device: str, resume: bool | None = None) -> list[str]:
        """The same training, run through :mod:`nnunet_25d.benchmark.measure` to record peak memory."""
        return [sys.executable, "-m", "nnunet_25d.benchmark.measure", "--record",
                str(self.fold_folder / RESOURCES_FILE), "--", *self.train_args(device, resume)]

    def shell_command(self, device: str) -> str:
        """For schedulers: resumes by itself when a checkpoint exists when the task starts."""
        fresh = shlex.join(self.measured_args(device, resume=False))
        resumed = shlex.join(self.measured_args(device, resume=True))
        checkpoints = " -o ".join(f"-e {shlex.quote(str(self.fold_folder / n))}"
                                  for n in ("checkpoint_latest.pth", "checkpoint_final.pth"))
        return f"if [ {checkpoints} ]; then {resumed}; else {fresh}; fi"


def build_jobs(variants: list[Variant], folds: list[int], dataset_id: str, model_root: Path,
               plans: str = "nnUNetPlans") -> list[Job]:
    """Variant-major order: all folds of a variant before the next variant."""
    return [Job(v, f, dataset_id, model_root, plans) for v in variants for f in folds]
