"""Aggregate each variant's cases (cross-validation folds and the test set) per split, metric and class, and
compare every variant with every baseline on each of them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from nnunet_25d.benchmark.collect import FoldResult
from nnunet_25d.benchmark.matrix import Variant
from nnunet_25d.benchmark.statistics import (METRICS, SPLITS, CaseMean, CaseScore, Comparison, case_mean, compare,
                                             holm, mean_score, mean_std)


@dataclass(frozen=True)
class Outcomes:
    """One class of one model on one split, counted per case: what Metrics Reloaded asks beside the means."""

    present: int  # cases whose reference has the class
    missed: int  # of those, predicted empty
    empty: int  # cases whose reference has none
    false_positive: int  # of those, predicted into


@dataclass
class VariantSummary:
    """One variant's results. Scores are read per split ("cv", "test"), metric ("dice", "hd95", "nsd") and class,
    always under the absent/present rule; ``means`` holds them all, ``dice`` the cross-validation Dice."""

    variant: Variant
    folds: list[FoldResult]  # resources and curves
    cases: list[CaseScore]  # the per-case CSV's rows of this variant (both splits): every score comes from these
    dice: dict[str, tuple[float, float]] = field(default_factory=dict)  # class -> CV (mean over cases, std of folds)
    # (split, metric) -> class -> (mean, std): the mean over the split's cases (cv: every fold's validation cases,
    # each validated once), the estimand of the paired comparisons too; std: cv over the folds' means (their
    # spread), test NaN (one model, the fold ensemble)
    means: dict[tuple[str, str], dict[str, tuple[float, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in self.splits:
            for metric in METRICS:
                self.means[(split, metric)] = {name: self.mean_std(split, metric, name) for name in self.class_names}
        self.dice.update(self.means.get(("cv", "dice"), {}))

    @property
    def class_names(self) -> list[str]:
        return list(dict.fromkeys(s.class_name for s in self.cases))

    @property
    def splits(self) -> list[str]:
        """The splits this variant has scores on, in the order of :data:`SPLITS`."""
        present = {s.split for s in self.cases}
        return [split for split in SPLITS if split in present]

    @property
    def fold_ids(self) -> list[int]:
        return list(dict.fromkeys(f.job.fold for f in self.folds))

    @property
    def seeds(self) -> list[int]:
        """The seeded repeats of its training that the cases come from (0: the plain trainer)."""
        return sorted({s.seed for s in self.cases})

    def seed_means(self, split: str, metric: str, name: str) -> dict[int, float]:
        """Per seeded repeat: the mean of ``metric`` of class ``name`` over the split's cases."""
        chosen = [s for s in self.cases if s.split == split and s.class_name == name]
        return {seed: mean_score([s for s in chosen if s.seed == seed], metric) for seed in self.seeds}

    def fold_means(self, name: str, metric: str = "dice") -> dict[int, float]:
        """Per cross-validation fold: mean ``metric`` of class ``name`` over the fold's cases (absent/present rule;
        NaN for a fold where every case is a correct absence)."""
        cv = [s for s in self.cases if s.split == "cv" and s.class_name == name]
        folds = dict.fromkeys(s.fold for s in cv)
        return {fold: mean_score([s for s in cv if s.fold == fold], metric) for fold in folds}

    def fold_dice(self, name: str) -> dict[int, float]:
        return self.fold_means(name, "dice")

    def case_values(self, split: str, metric: str, name: str) -> dict[str, float]:
        """Case -> ``metric`` of class ``name`` under the absent/present rule; correct absences left out (for box
        plots and means over cases)."""
        return {case: s.value(metric) for case, s in self.scores(name, split).items() if not s.absent}

    def mean_std(self, split: str, metric: str, name: str) -> tuple[float, float]:
        """See ``means``."""
        mean = mean_score(list(self.scores(name, split).values()), metric)
        if split == "cv":
            return mean, mean_std(list(self.fold_means(name, metric).values()))[1]
        return mean, float("nan")

    def outcomes(self, split: str, name: str) -> Outcomes:
        """Counted over every (case, seeded repeat)."""
        scores = [s for s in self.cases if s.class_name == name and s.split == split]
        present = [s for s in scores if s.n_ref > 0]
        empty = [s for s in scores if s.n_ref == 0]
        return Outcomes(len(present), sum(s.n_pred == 0 for s in present), len(empty),
                        sum(s.n_pred > 0 for s in empty))

    def scores(self, name: str, split: str = "cv") -> dict[str, CaseScore | CaseMean]:
        """Class ``name`` in every case of ``split`` (each CV case is validated in exactly one fold); with seeded
        repeats, each case's mean over them."""
        chosen = [s for s in self.cases if s.class_name == name and s.split == split]
        if len(self.seeds) <= 1:
            return {s.case: s for s in chosen}
        repeats: dict[str, list[CaseScore]] = {}
        for score in sorted(chosen, key=lambda s: s.seed):
            repeats.setdefault(score.case, []).append(score)
        return {case: case_mean(scores) for case, scores in repeats.items()}

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

    @property
    def engine(self) -> str:
        """What ran its validation's network; "mixed" where folds differ."""
        engines = {f.engine for f in self.folds if f.engine}
        return engines.pop() if len(engines) == 1 else ("mixed" if engines else "")


def class_names_of(summaries: list[VariantSummary]) -> list[str]:
    """Every class any of the summaries scored, in the order they first appear."""
    return list(dict.fromkeys(name for s in summaries for name in s.class_names))


@dataclass(frozen=True)
class PrimaryComparison:
    """The comparison declared before the run: one metric on one split, over every class x variant x baseline.
    Holm corrects over this family only; every other comparison is secondary (uncorrected, labelled so)."""

    metric: str = "dice"
    split: str = "cv"

    def holds(self, comparison: Comparison) -> bool:
        return (comparison.metric, comparison.split) == (self.metric, self.split)


def compare_all(summaries: list[VariantSummary], baselines: list[str],
                primary: PrimaryComparison = PrimaryComparison()) -> list[Comparison]:
    """Per split, metric and class, every variant that is not a baseline against every baseline
    (``TRAINER:CONFIGURATION``), each over the cases both scored. Holm-adjusted over the primary family; the
    other comparisons keep their unadjusted p only. No baseline is picked from the results, so none can be picked
    to suit a class."""
    by_key = {s.variant.key: s for s in summaries}
    references = [by_key[key] for key in baselines if key in by_key]
    names = class_names_of(summaries)
    splits = [split for split in SPLITS if any(split in s.splits for s in summaries)]
    table = [compare(s.scores(name, split), b.scores(name, split), s.variant.key, b.variant.key, name, metric, split)
             for split in splits for metric in METRICS for name in names
             for s in summaries if s.variant.key not in baselines and split in s.splits
             for b in references if split in b.splits]
    family = holm([c for c in table if primary.holds(c)])
    adjusted = iter(replace(c, primary=True) for c in family)
    return [next(adjusted) if primary.holds(c) else c for c in table]
