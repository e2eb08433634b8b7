"""What a report shows, independent of where it came from: per model its scores (split x metric x class), costs,
training curves and the other work its timings shared the CPUs with; paired differences between models."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from nnunet_25d.report.load import comparable_load, contended

NAN = float("nan")


@dataclass(frozen=True)
class Score:
    """One metric of one class on one split, e.g. ("cv", "dice", "nodule")."""

    split: str  # "cv" (validation folds) or "test" (imagesTs), as in cases.csv's split column
    metric: str  # a metric key, e.g. "dice", "hd95"
    class_name: str
    mean: float  # over the split's cases (the paired comparisons' estimand)
    std: float = NAN  # of the folds' means (their spread)
    per_fold: Mapping[int, float] = field(default_factory=dict)
    per_case: tuple[float, ...] = ()  # for box plots
    n_cases: int | None = None  # cases behind ``mean`` where ``per_case`` is not given

    @property
    def n(self) -> int | None:
        """How many cases stand behind the mean (None: not known)."""
        if self.per_case:
            return sum(1 for v in self.per_case if not math.isnan(v))
        return self.n_cases


@dataclass
class ModelRow:
    label: str
    trainer: str
    configuration: str
    scores: list[Score] = field(default_factory=list)
    seconds_per_epoch: float = NAN
    seconds_per_case: float = NAN
    parameters: int = 0
    peak_memory_mib: float = NAN
    other_cpu: float = NAN  # most cores other processes used (30-s window) while its timings were taken
    cores: int | None = None  # logical cores of the machine that took them
    curves: dict[str, list[float]] = field(default_factory=dict)  # nnU-Net's logging: train_losses, val_losses, ...
    baseline: bool = False
    folds: tuple[int, ...] = ()
    key: str = ""  # how paired differences name this model (default: its label)
    training_hours: float = NAN  # summed wall time of its trainings x devices: GPU-hours on CUDA, else CPU wall
    training_device: str = ""  # "GPU" or "CPU": what ``training_hours`` counts
    engine: str = ""  # what ran the network for ``seconds_per_case``: "ONNX Runtime", "PyTorch"
    # nnU-Net 2d's s/case through nnUNetv2_predict, as users run it (the reference row of a demo only)
    stock_seconds_per_case: float = NAN

    def __post_init__(self) -> None:
        self.key = self.key or self.label

    def score(self, split: str, metric: str, class_name: str) -> Score | None:
        return next((s for s in self.scores if (s.split, s.metric, s.class_name) == (split, metric, class_name)),
                    None)

    def value(self, split: str, metric: str, class_name: str) -> float:
        found = self.score(split, metric, class_name)
        return NAN if found is None else found.mean

    def timed_like(self, other: "ModelRow") -> bool:
        """Its timings and ``other``'s were taken under comparable load, so their ratio means something."""
        return comparable_load(self.other_cpu, other.other_cpu, self.cores or other.cores)

    def cases(self, split: str) -> str:
        """The number of cases behind its means on ``split``: "4", "4-6" where classes differ, "?" if unknown."""
        counts = sorted({s.n for s in self.scores if s.split == split and s.n is not None})
        if not counts:
            return "?"
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"

    @property
    def contended(self) -> bool:
        """Its timings were taken while other work used a noticeable share of the cores."""
        return contended(self.other_cpu, self.cores)


@dataclass(frozen=True)
class Difference:
    """A model against a baseline on one split, metric and class, paired over the cases both have."""

    variant: str
    baseline: str
    split: str
    metric: str
    class_name: str
    n: int
    mean: float  # variant minus baseline
    ci_low: float
    ci_high: float
    p: float  # unadjusted (sign-flip permutation test of the mean difference)
    p_adjusted: float  # Holm over the primary family; NaN for a secondary comparison
    hodges_lehmann: float = NAN
    primary: bool = False
    few_pairs: bool = False  # its CI comes from fewer than ten pairs: flagged
    ci_clustered_low: float = NAN  # resampling folds, cases within them and seeded repeats
    ci_clustered_high: float = NAN


def splits_of(rows: list[ModelRow]) -> list[str]:
    return list(dict.fromkeys(s.split for r in rows for s in r.scores))


def metrics_of(rows: list[ModelRow]) -> list[str]:
    """The metrics with at least one value (a metric nobody computed stays out of tables and figures)."""
    return list(dict.fromkeys(s.metric for r in rows for s in r.scores if finite(s.mean)))


def classes_of(rows: list[ModelRow], split: str | None = None, metric: str | None = None) -> list[str]:
    return list(dict.fromkeys(s.class_name for r in rows for s in r.scores
                              if split in (None, s.split) and metric in (None, s.metric)))


def finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def reference_row(rows: list[ModelRow]) -> ModelRow | None:
    """The baseline that time ratios are taken against: the first 2d baseline, else the first baseline."""
    baselines = [r for r in rows if r.baseline]
    return next((r for r in baselines if r.configuration == "2d"), baselines[0] if baselines else None)
