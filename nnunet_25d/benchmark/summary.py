"""Aggregate the folds of each variant and compare every variant with the best nnU-Net baseline."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nnunet_25d.benchmark.collect import FoldResult
from nnunet_25d.benchmark.matrix import Variant
from nnunet_25d.benchmark.statistics import PairedTest, mean_std, paired_wilcoxon


@dataclass
class VariantSummary:
    variant: Variant
    folds: list[FoldResult]
    dice: dict[str, tuple[float, float]] = field(default_factory=dict)  # class -> (mean, std) over folds
    versus_baseline: dict[str, PairedTest] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.class_names:
            self.dice[name] = mean_std([f.mean_dice.get(name, float("nan")) for f in self.folds])

    @property
    def class_names(self) -> list[str]:
        return list(dict.fromkeys(name for f in self.folds for name in f.mean_dice))

    @property
    def fold_ids(self) -> list[int]:
        return [f.job.fold for f in self.folds]

    @property
    def mean_foreground_dice(self) -> float:
        return float(np.nanmean([mean for mean, _ in self.dice.values()])) if self.dice else float("nan")

    def dice_per_case(self, name: str) -> dict[str, float]:
        """Per-case Dice of class ``name`` over all folds (each case is validated in exactly one fold)."""
        return {case: value for f in self.folds for case, value in f.dice_per_case.get(name, {}).items()}

    def _fold_mean(self, attribute: str) -> float:
        values = [getattr(f, attribute) for f in self.folds]
        finite = [v for v in values if v is not None and not math.isnan(v)]
        return float(np.mean(finite)) if finite else float("nan")

    @property
    def seconds_per_epoch(self) -> float:
        return self._fold_mean("seconds_per_epoch")

    @property
    def seconds_per_case(self) -> float:
        return self._fold_mean("seconds_per_case")

    @property
    def peak_memory_mib(self) -> float:
        values = [f.peak_memory_mib for f in self.folds if f.peak_memory_mib is not None]
        return max(values) if values else float("nan")

    @property
    def parameters(self) -> int:
        return self.folds[0].parameters if self.folds else 0


def best_baseline(summaries: list[VariantSummary]) -> VariantSummary | None:
    """The nnU-Net baseline with the highest mean foreground Dice."""
    baselines = [s for s in summaries if s.variant.is_baseline and not math.isnan(s.mean_foreground_dice)]
    return max(baselines, key=lambda s: s.mean_foreground_dice, default=None)


def compare_with_baseline(summaries: list[VariantSummary]) -> VariantSummary | None:
    """Fill each summary's ``versus_baseline`` (per class, paired per case); return the baseline used."""
    baseline = best_baseline(summaries)
    if baseline is None:
        return None
    for summary in summaries:
        if summary is baseline:
            continue
        for name in summary.class_names:
            summary.versus_baseline[name] = paired_wilcoxon(summary.dice_per_case(name),
                                                            baseline.dice_per_case(name))
    return baseline
