"""Benchmark statistics: per-case scores (Dice, HD95, NSD) with one absent/present rule, paired comparisons of a
variant with a baseline (the mean difference: bootstrap CI and exact sign-flip permutation test; Hodges-Lehmann
beside it), Holm's correction over the pre-declared primary family."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import bootstrap, permutation_test

from nnunet_25d.report.metrics import KNOWN_METRICS as METRICS  # each metric's direction and "perfect" value

BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # a fixed seed: the same per-case data give the same report
PERMUTATION_EXACT_UP_TO = 16  # pairs: all 2^n sign patterns enumerated (65 536); Monte Carlo beyond
PERMUTATION_RESAMPLES = 99_999
PERMUTATION_SEED = 0
CLUSTERED_RESAMPLES = 2000
FEW_PAIRS = 10  # a bootstrap CI from fewer pairs under-covers (simulated: 80 % at n = 4, 87 % at 6 for 95 %)
ENSEMBLE_FOLD = -1  # the fold of a test-set score: the ensemble of the benchmarked folds predicted it


SPLITS = ("cv", "test")  # cross-validation (each fold's validation cases), the test set (imagesTs/labelsTs)


@dataclass(frozen=True)
class CaseScore:
    """One class in one case of one model: a validation case of a fold (``split="cv"``, Dice from nnU-Net's
    ``summary.json`` ``metric_per_case``) or a test case predicted by the ensemble of the folds (``split="test"``,
    fold :data:`ENSEMBLE_FOLD`). HD95 and NSD come from :mod:`nnunet_25d.benchmark.surface`, which already applies
    the absent/present rule (NaN / image diagonal and 0)."""

    variant: str  # TRAINER:CONFIGURATION
    fold: int
    case: str
    class_name: str
    dice: float  # nnU-Net's Dice (NaN when reference and prediction are both empty)
    n_ref: int  # voxels of the class in the reference
    n_pred: int  # voxels of the class in the prediction
    hd95: float = float("nan")  # mm
    nsd: float = float("nan")
    split: str = "cv"
    nsd_tolerance_mm: float = float("nan")
    seed: int = 0  # the seeded repeat of the model's training (0: the plain trainer)

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

    def value(self, metric: str) -> float:
        """``metric`` under the absent/present rule: NaN when both are empty; when exactly one is, Dice and NSD 0
        and HD95 the image diagonal (stored so by the surface metrics); the metric otherwise."""
        if metric == "dice":
            return self.score
        if self.absent:
            return float("nan")
        if metric == "nsd" and (self.n_ref == 0 or self.n_pred == 0):
            return 0.0
        return float(getattr(self, metric))


@dataclass(frozen=True)
class CaseMean:
    """One class in one case, averaged over a model's seeded repeats: each repeat under the absent/present rule, a
    repeat that correctly left the class out scoring the perfect value beside repeats that painted it (as in a
    paired comparison); absent when every repeat is a correct absence. ``per_seed`` keeps the repeats' values for
    the clustered bootstrap."""

    variant: str
    fold: int
    case: str
    class_name: str
    split: str
    per_seed: Mapping[str, tuple[float, ...]]  # metric -> one value per repeat, in seed order
    absent: bool

    def value(self, metric: str) -> float:
        return float("nan") if self.absent else float(np.mean(self.per_seed[metric]))


def case_mean(repeats: Sequence[CaseScore]) -> CaseMean:
    """The repeats (one per seed, same case and class) as one :class:`CaseMean`."""
    first = repeats[0]
    per_seed = {metric: tuple(paired_value(r, metric) for r in repeats) for metric in METRICS}
    return CaseMean(first.variant, first.fold, first.case, first.class_name, first.split, per_seed,
                    all(r.absent for r in repeats))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value), ignoring NaN."""
    finite = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0


def mean_score(scores: Sequence[CaseScore], metric: str) -> float:
    """Mean of ``metric`` over cases under the absent/present rule (NaN if every case is a correct absence)."""
    values = [v for v in (s.value(metric) for s in scores if not s.absent) if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def paired_scores(variant: Mapping[str, CaseScore], baseline: Mapping[str, CaseScore], metric: str
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Cases both scored, with their ``metric`` as pairs.

    A pair is left out only when both models correctly predicted an empty class (or a value is missing). When the
    reference is empty and one model paints the class, that model gets the failure value (Dice and NSD 0, HD95 the
    image diagonal) and the other the perfect one (1, 1, 0 mm): a false positive on an empty case counts as a
    failure here, where leaving the correct side out (its metric is undefined) would hide it.
    """
    cases, ours, theirs = [], [], []
    for case in sorted(variant.keys() & baseline.keys()):
        if variant[case].absent and baseline[case].absent:
            continue
        pair = paired_value(variant[case], metric), paired_value(baseline[case], metric)
        if not any(math.isnan(v) for v in pair):
            cases.append(case)
            ours.append(pair[0])
            theirs.append(pair[1])
    return cases, np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)


def paired_value(score: CaseScore | CaseMean, metric: str) -> float:
    """The case's value beside another model's: a correct absence scores the perfect value."""
    return METRICS[metric].perfect if score.absent else score.value(metric)


def seed_values(score: CaseScore | CaseMean, metric: str) -> tuple[float, ...]:
    """The case's value in each seeded repeat, as a paired comparison scores it (a correct absence: the perfect
    value, in every repeat)."""
    if isinstance(score, CaseMean):
        return score.per_seed[metric]
    return (paired_value(score, metric),)


@dataclass(frozen=True)
class Comparison:
    """A variant against a baseline for one class, split and metric, paired over the cases both scored. The
    difference is always variant minus baseline: positive is better for Dice and NSD, negative for HD95."""

    variant: str
    baseline: str
    class_name: str
    n_pairs: int
    mean_difference: float  # variant minus baseline
    ci_low: float  # 95 % bootstrap CI of the mean difference (BCa, cases resampled as pairs)
    ci_high: float
    p_value: float  # two-sided sign-flip permutation p of the mean difference; NaN for no pairs / no differences
    p_holm: float = float("nan")  # Holm-adjusted over the primary family; NaN for a secondary comparison
    metric: str = "dice"
    split: str = "cv"
    hodges_lehmann: float = float("nan")  # median of the Walsh averages of the differences: robust to outliers
    primary: bool = False  # in the pre-declared primary family (one metric on one split)
    # 95 % percentile CI of the mean difference from a bootstrap that resamples folds, cases within them and each
    # model's seeded repeats (NaN with one fold and one seed, where it is the plain bootstrap)
    ci_clustered_low: float = float("nan")
    ci_clustered_high: float = float("nan")

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better

    @property
    def few_pairs(self) -> bool:
        """Its CI comes from so few pairs that it is flagged (and too narrow)."""
        return 2 <= self.n_pairs < FEW_PAIRS


def compare(variant: Mapping[str, CaseScore | CaseMean], baseline: Mapping[str, CaseScore | CaseMean],
            variant_name: str, baseline_name: str, class_name: str, metric: str, split: str) -> Comparison:
    """``variant`` against ``baseline`` (case -> score of one class) over the cases both scored."""
    cases, ours, theirs = paired_scores(variant, baseline, metric)
    differences = ours - theirs
    mean = float(differences.mean()) if cases else float("nan")
    low, high = bootstrap_ci(ours, theirs)
    clustered = clustered_bootstrap_ci([seed_values(variant[c], metric) for c in cases],
                                       [seed_values(baseline[c], metric) for c in cases],
                                       [variant[c].fold for c in cases])
    return Comparison(variant_name, baseline_name, class_name, len(cases), mean, low, high,
                      sign_flip_p(ours, theirs), metric=metric, split=split,
                      hodges_lehmann=hodges_lehmann(differences), ci_clustered_low=clustered[0],
                      ci_clustered_high=clustered[1])


def clustered_bootstrap_ci(ours: Sequence[Sequence[float]], theirs: Sequence[Sequence[float]],
                           folds: Sequence[int], level: float = 0.95, resamples: int = CLUSTERED_RESAMPLES,
                           seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile CI of the mean paired difference when cases cluster by fold and each model was trained several
    times: each resample draws folds with replacement, then cases within each drawn fold, then each model's repeats
    (``ours[i]``: the variant's value of pair i in every repeat). NaN below two pairs, or with one fold and one
    repeat per model (the plain bootstrap is the interval there)."""
    if len(ours) < 2 or len({len(v) for v in ours}) > 1 or len({len(v) for v in theirs}) > 1:
        return float("nan"), float("nan")
    ours_by_seed, theirs_by_seed = np.asarray(ours, dtype=float).T, np.asarray(theirs, dtype=float).T
    clusters = [np.flatnonzero(np.asarray(folds) == f) for f in dict.fromkeys(folds)]
    if len(clusters) == 1 and ours_by_seed.shape[0] == theirs_by_seed.shape[0] == 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    statistics = np.empty(resamples)
    for b in range(resamples):
        drawn = rng.integers(0, len(clusters), len(clusters))
        cases = np.concatenate([rng.choice(clusters[k], clusters[k].size) for k in drawn])
        our_seeds = rng.integers(0, ours_by_seed.shape[0], ours_by_seed.shape[0])
        their_seeds = rng.integers(0, theirs_by_seed.shape[0], theirs_by_seed.shape[0])
        statistics[b] = (ours_by_seed[our_seeds][:, cases].mean(axis=0)
                         - theirs_by_seed[their_seeds][:, cases].mean(axis=0)).mean()
    tail = (1 - level) / 2
    low, high = np.quantile(statistics, [tail, 1 - tail])
    return float(low), float(high)


def sign_flip_p(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Two-sided permutation p of the mean paired difference under H0 "each pair's sign is exchangeable" (SciPy's
    paired permutation test: every one of the 2^n sign patterns up to :data:`PERMUTATION_EXACT_UP_TO` pairs, a
    seeded Monte Carlo sample beyond). It tests the quantity the CI estimates, which Wilcoxon (the pseudo-median)
    does not. NaN without pairs or differences."""
    if ours.size == 0 or not np.any(ours - theirs):
        return float("nan")
    if ours.size == 1:
        return 1.0  # +d and -d are equally extreme (SciPy wants two observations)
    resamples = np.inf if ours.size <= PERMUTATION_EXACT_UP_TO else PERMUTATION_RESAMPLES
    result = permutation_test((ours, theirs), _mean_difference, permutation_type="samples", vectorized=True,
                              n_resamples=resamples, alternative="two-sided",
                              rng=np.random.default_rng(PERMUTATION_SEED))
    return float(result.pvalue)


def hodges_lehmann(differences: np.ndarray) -> float:
    """The Hodges-Lehmann estimate of the paired shift: the median of all (d_i + d_j) / 2 with i <= j."""
    if differences.size == 0:
        return float("nan")
    i, j = np.triu_indices(differences.size)
    return float(np.median((differences[i] + differences[j]) / 2))


def _mean_difference(ours: np.ndarray, theirs: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(ours - theirs, axis=axis)


def bootstrap_ci(ours: np.ndarray, theirs: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Paired bootstrap CI (BCa) of the mean difference; NaN below two pairs, a point when all differences agree
    (where BCa is undefined; it is defined for every other sample of two or more pairs)."""
    differences = ours - theirs
    if differences.size < 2:
        return float("nan"), float("nan")
    if np.all(differences == differences[0]):
        return float(differences[0]), float(differences[0])
    result = bootstrap((ours, theirs), _mean_difference, paired=True, vectorized=True, confidence_level=level,
                       n_resamples=BOOTSTRAP_RESAMPLES, method="BCa", rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


RANK_RESAMPLES = 1000


def rank_stability(values: Mapping[str, np.ndarray], higher_is_better: bool, resamples: int = RANK_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> dict[str, tuple[float, float]]:
    """Model -> (share of bootstrap resamples of the cases in which it ranks first, its mean rank), the models
    ranked by their mean over the same resampled cases (``values``: one array per model, aligned by case). Ties
    share the better rank."""
    names = list(values)
    table = np.asarray([values[n] for n in names], dtype=float)  # models x cases
    if table.size == 0 or table.shape[1] == 0:
        return {n: (float("nan"), float("nan")) for n in names}
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, table.shape[1], size=(resamples, table.shape[1]))
    means = table[:, drawn].mean(axis=2)  # models x resamples
    signed = -means if higher_is_better else means
    ranks = (signed[:, None, :] > signed[None, :, :]).sum(axis=1) + 1  # 1 + how many are strictly better
    return {n: (float(np.mean(ranks[i] == 1)), float(ranks[i].mean())) for i, n in enumerate(names)}


def holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Holm-adjusted p-values over all comparisons with a defined p (the family is all of ``comparisons``)."""
    from statsmodels.stats.multitest import multipletests  # ~1 s to import: not on every nnunet25d start

    defined = [i for i, c in enumerate(comparisons) if not math.isnan(c.p_value)]
    adjusted = [float("nan")] * len(comparisons)
    if defined:
        corrected = multipletests([comparisons[i].p_value for i in defined], method="holm")[1]
        for i, p in zip(defined, corrected):
            adjusted[i] = float(p)
    return [replace(c, p_holm=p) for c, p in zip(comparisons, adjusted)]
