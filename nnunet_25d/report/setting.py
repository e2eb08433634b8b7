"""What a report is about: dataset, training schedule, folds, splits, classes and machine; the title from them."""
from __future__ import annotations

from dataclasses import dataclass, field

from nnunet_25d.report.machine import Machine

NNUNET_DEFAULT_EPOCHS, NNUNET_DEFAULT_ITERATIONS = 1000, 250


@dataclass(frozen=True)
class ReportSetting:
    dataset: str  # DatasetXXX_Name
    schedule: str  # e.g. "10 epochs x 50 iterations"
    folds: tuple[int, ...]  # the folds trained (the test set is predicted with their model(s))
    classes: dict[str, str] = field(default_factory=dict)  # class name -> its label value(s) in dataset.json
    machines: tuple[Machine, ...] = ()
    description: str = ""  # dataset.json's description
    case_time: str = "inference"  # what s/case measures, e.g. "test-set prediction"
    subtitle: str = ""  # what is compared, e.g. "nnU-Net 2d vs 2.5D"

    @property
    def dataset_id(self) -> str:
        return str(int(self.dataset[len("Dataset"):].split("_", 1)[0]))

    def split_title(self, split: str) -> str:
        """"5-fold CV", "validation fold 0", "test set" (predicted with the fold-0 model)..."""
        folds = ",".join(map(str, self.folds))
        if split == "test":
            if not self.folds:
                return "test set"
            return f"test set (ensemble of folds {folds})" if len(self.folds) > 1 else f"test set (fold-{folds} model)"
        if split == "cv":
            if len(self.folds) == 1:
                return f"validation fold {folds}"
            if tuple(sorted(self.folds)) == tuple(range(5)):
                return "5-fold CV"
            return f"CV over folds {folds}"
        return split

    def title(self, splits: list[str]) -> str:
        """The figure's suptitle: dataset and ID, schedule, splits."""
        where = " and ".join(self.split_title(s) for s in splits)
        return f"{self.dataset} (ID {self.dataset_id}) · {self.schedule} · {where}"


def schedule_of(trainer: str) -> str:
    """The schedule a trainer name declares (``_10epochs_50iters``, nnU-Net's ``_5epochs``); nnU-Net's default
    otherwise."""
    from nnunet_25d.trainers.variants import split_trainer_name  # imports nnU-Net: only when a report is made

    parts = split_trainer_name(trainer)
    if parts.epochs is None:
        return f"{NNUNET_DEFAULT_EPOCHS} epochs x {NNUNET_DEFAULT_ITERATIONS} iterations (nnU-Net's default)"
    return f"{parts.epochs} epoch{'s' if parts.epochs != 1 else ''} x " \
           f"{parts.iterations or NNUNET_DEFAULT_ITERATIONS} iterations"


def schedules_of(trainers: list[str]) -> str:
    """One schedule, or each distinct one with its trainers."""
    by_schedule: dict[str, list[str]] = {}
    for trainer in dict.fromkeys(trainers):
        by_schedule.setdefault(schedule_of(trainer), []).append(trainer)
    if len(by_schedule) <= 1:
        return next(iter(by_schedule), "unknown schedule")
    return "; ".join(f"{schedule} ({', '.join(names)})" for schedule, names in by_schedule.items())


def classes_of_dataset(dataset_json: dict) -> dict[str, str]:
    """{"tube": "label 1", ...} from dataset.json ``labels`` (region-based: "labels 1, 2"), background left out."""
    classes = {}
    for name, value in dataset_json["labels"].items():
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if values != [0]:
            classes[name] = f"label{'s' if len(values) > 1 else ''} {', '.join(map(str, values))}"
    return classes
