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
        """done | validate (final checkpoint, validation or its .npz missing) | resume (a checkpoint) | train."""
        final = (self.fold_folder / "checkpoint_final.pth").exists()
        validated = (self.validation_folder / "summary.json").exists() and any(self.validation_folder.glob("*.npz"))
        if final:
            return "done" if validated else "validate"
        return "resume" if (self.fold_folder / "checkpoint_latest.pth").exists() else "train"

    def train_args(self, device: str, mode: str | None = None, num_gpus: int = 1) -> list[str]:
        """nnUNetv2_train arguments for ``mode`` (default: the fold's current one); always ``--npz``."""
        mode = mode or self.mode
        args = ["nnUNetv2_train", self.dataset_id, self.variant.configuration, str(self.fold),
                "-tr", self.variant.trainer_name, "-p", self.plans, "-device", device, "--npz"]
        if num_gpus > 1:
            args += ["-num_gpus", str(num_gpus)]
        return args + {"resume": ["--c"], "validate": ["--val"]}.get(mode, [])

    def measured_args(self, device: str, mode: str | None = None, python: str = sys.executable,
                      num_gpus: int = 1) -> list[str]:
        """The same command, run through :mod:`nnunet_25d.benchmark.measure` to record peak memory."""
        return [python, "-m", "nnunet_25d.benchmark.measure", "--record", str(self.fold_folder / RESOURCES_FILE),
                "--", *self.train_args(device, mode, num_gpus)]

    def shell_command(self, device: str, python: str = sys.executable, num_gpus: int = 1) -> str:
        """For schedulers: decides when the task starts whether to skip, validate, resume or train."""
        def exists(path: Path) -> str:
            return f"[ -e {shlex.quote(str(path))} ]"

        def run(mode: str) -> str:
            return shlex.join(self.measured_args(device, mode, python, num_gpus))

        final, latest = self.fold_folder / "checkpoint_final.pth", self.fold_folder / "checkpoint_latest.pth"
        npz = f"ls {shlex.quote(str(self.validation_folder))}/*.npz >/dev/null 2>&1"
        done = f"{exists(final)} && {exists(self.validation_folder / 'summary.json')} && {npz}"
        return (f"if {done}; then echo {shlex.quote(self.name + ': finished')}; "
                f"elif {exists(final)}; then {run('validate')}; "
                f"elif {exists(latest)}; then {run('resume')}; else {run('train')}; fi")


def build_jobs(variants: list[Variant], folds: list[int], dataset_id: str, model_root: Path,
               plans: str = "nnUNetPlans") -> list[Job]:
    """Variant-major order: all folds of a variant before the next variant."""
    return [Job(v, f, dataset_id, model_root, plans) for v in variants for f in folds]
