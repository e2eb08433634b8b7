"""Benchmark statistics: per-case scores with an explicit absent/present rule, paired comparisons of a variant
with a baseline (bootstrap CI, Wilcoxon), Holm's correction over a table of comparisons."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import bootstrap, wilcoxon

BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # a fixed seed: the same per-case data give the same report


@dataclass(frozen=True)
class CaseScore:
    """One class in one validation case of one model, from nnU-Net's ``summary.json`` ``metric_per_case``."""

    variant: str  # TRAINER:CONFIGURATION
    fold: int
    case: str
    class_name: str
    dice: float  # nnU-Net's Dice (NaN when reference and prediction are both empty)
    n_ref: int  # voxels of the class in the reference
    n_pred: int  # voxels of the class in the prediction

    @property
    def absent(self) -> bool:
        """Reference and prediction both empty: a correct "not there"."""
        return self.n_ref == 0 and self.n_pred == 0

    @property
    def score(self) -> float:
        """Dice under the absent/present rule: NaN (left out of means) when both are empty, 0 when exactly one
        is, nnU-Net's Dice otherwise. Decided from the voxel counts, not from whether the Dice is NaN."""
        if self.absent:
            return float("nan")
        if self.n_ref == 0 or self.n_pred == 0:
            return 0.0
        return self.dice


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value), ignoring NaN."""
    finite = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0


def mean_score(scores: Sequence[CaseScore]) -> float:
    """Mean Dice of cases under the absent/present rule (NaN if every case is a correct absence)."""
    values = [s.score for s in scores if not s.absent]
    return float(np.mean(values)) if values else float("nan")


def paired_scores(variant: Mapping[str, CaseScore], baseline: Mapping[str, CaseScore]
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Cases both validated, with their scores as pairs.

    A pair is left out only when both models correctly predicted an empty class. When the reference is empty and
    one model paints the class, that model scores 0 and the other 1: a false positive on an empty case counts as a
    failure here, where leaving the correct side out (its Dice is undefined) would hide it.
    """
    cases = sorted(c for c in variant.keys() & baseline.keys() if not (variant[c].absent and baseline[c].absent))
    return (cases, np.asarray([_paired_score(variant[c]) for c in cases], dtype=float),
            np.asarray([_paired_score(baseline[c]) for c in cases], dtype=float))


def _paired_score(score: CaseScore) -> float:
    return 1.0 if score.absent else score.score


@dataclass(frozen=True)
class Comparison:
    """A variant against a baseline for one class, paired over the cases both validated."""

    variant: str
    baseline: str
    class_name: str
    n_pairs: int
    mean_difference: float  # variant minus baseline
    ci_low: float  # 95 % bootstrap CI of the mean difference (BCa, cases resampled as pairs)
    ci_high: float
    p_value: float  # two-sided Wilcoxon signed-rank; NaN where undefined (no pairs, all differences zero)
    p_holm: float = float("nan")  # Holm-adjusted over the comparisons of one table


def compare(variant: Mapping[str, CaseScore], baseline: Mapping[str, CaseScore], variant_name: str = "",
            baseline_name: str = "", class_name: str = "") -> Comparison:
    cases, ours, theirs = paired_scores(variant, baseline)
    differences = ours - theirs
    mean = float(differences.mean()) if cases else float("nan")
    low, high = bootstrap_ci(ours, theirs)
    return Comparison(variant_name, baseline_name, class_name, len(cases), mean, low, high,
                      wilcoxon_p(ours, theirs))


def wilcoxon_p(ours: np.ndarray, theirs: np.ndarray) -> float:
    if ours.size == 0 or not np.any(ours - theirs):
        return float("nan")
    return float(wilcoxon(ours, theirs).pvalue)


def _mean_difference(ours: np.ndarray, theirs: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(ours - theirs, axis=axis)


def bootstrap_ci(ours: np.ndarray, theirs: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Paired bootstrap CI of the mean difference; NaN below two pairs, a point when all differences agree."""
    differences = ours - theirs
    if differences.size < 2:
        return float("nan"), float("nan")
    if np.all(differences == differences[0]):
        return float(differences[0]), float(differences[0])
    result = bootstrap((ours, theirs), _mean_difference, paired=True, vectorized=True, confidence_level=level,
                       n_resamples=BOOTSTRAP_RESAMPLES, method="BCa", rng=np.random.default_rng(BOOTSTRAP_SEED))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):  # BCa undefined for some tiny samples: fall back to percentiles
        low, high = np.percentile(result.bootstrap_distribution, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Holm-adjusted p-values over all comparisons with a defined p (the family is the whole table)."""
    from statsmodels.stats.multitest import multipletests  # ~1 s to import: not on every nnunet25d start

    defined = [i for i, c in enumerate(comparisons) if not math.isnan(c.p_value)]
    adjusted = [float("nan")] * len(comparisons)
    if defined:
        corrected = multipletests([comparisons[i].p_value for i in defined], method="holm")[1]
        for i, p in zip(defined, corrected):
            adjusted[i] = float(p)
    return [replace(c, p_holm=p) for c, p in zip(comparisons, adjusted)]
