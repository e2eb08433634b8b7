"""Aggregate the folds of each variant and compare every variant with every baseline, class by class."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nnunet_25d.benchmark.collect import FoldResult
from nnunet_25d.benchmark.matrix import Variant
from nnunet_25d.benchmark.statistics import CaseScore, Comparison, compare, holm, mean_score, mean_std


@dataclass
class VariantSummary:
    variant: Variant
    folds: list[FoldResult]  # resources and curves
    cases: list[CaseScore]  # the per-case CSV's rows of this variant: Dice is computed from these
    dice: dict[str, tuple[float, float]] = field(default_factory=dict)  # class -> (mean, std) over folds

    def __post_init__(self) -> None:
        for name in self.class_names:
            self.dice[name] = mean_std(list(self.fold_dice(name).values()))

    @property
    def class_names(self) -> list[str]:
        return list(dict.fromkeys(s.class_name for s in self.cases))

    @property
    def fold_ids(self) -> list[int]:
        return [f.job.fold for f in self.folds]

    def fold_dice(self, name: str) -> dict[int, float]:
        """Per fold: mean Dice of class ``name`` over the fold's cases (absent/present rule)."""
        return {fold: mean_score([s for s in self.cases if s.fold == fold and s.class_name == name])
                for fold in dict.fromkeys(s.fold for s in self.cases)}

    def scores(self, name: str) -> dict[str, CaseScore]:
        """Class ``name`` in every validated case (each case is validated in exactly one fold)."""
        return {s.case: s for s in self.cases if s.class_name == name}

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


def compare_all(summaries: list[VariantSummary], baselines: list[str]) -> list[Comparison]:
    """Per class, every variant that is not a baseline against every baseline (``TRAINER:CONFIGURATION``),
    each over the cases both validated; p-values Holm-adjusted over the whole table. No baseline is picked
    from the results, so none can be picked to suit a class."""
    by_key = {s.variant.key: s for s in summaries}
    references = [by_key[key] for key in baselines if key in by_key]
    names = list(dict.fromkeys(name for s in summaries for name in s.class_names))
    comparisons = [compare(s.scores(name), b.scores(name), s.variant.key, b.variant.key, name)
                   for name in names for s in summaries if s.variant.key not in baselines for b in references]
    return holm(comparisons)
