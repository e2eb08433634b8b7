"""Summary statistics of a benchmark: mean ± std over folds, paired per-case tests against a baseline."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import wilcoxon


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value), ignoring NaN."""
    finite = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0


@dataclass(frozen=True)
class PairedTest:
    n_pairs: int
    mean_difference: float  # variant minus baseline
    p_value: float  # two-sided Wilcoxon signed-rank; NaN where it is undefined (no pairs, all differences zero)


def paired_wilcoxon(variant: Mapping[str, float], baseline: Mapping[str, float]) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of per-case scores, paired by case identifier.

    Cases missing from either side or scored NaN on either side (nnU-Net's Dice of an empty reference and
    empty prediction) are left out.
    """
    cases = sorted(c for c in variant.keys() & baseline.keys()
                   if not (math.isnan(variant[c]) or math.isnan(baseline[c])))
    differences = np.asarray([variant[c] - baseline[c] for c in cases], dtype=float)
    if differences.size == 0:
        return PairedTest(0, float("nan"), float("nan"))
    mean_difference = float(differences.mean())
    if not np.any(differences):
        return PairedTest(len(cases), mean_difference, float("nan"))
    result = wilcoxon([variant[c] for c in cases], [baseline[c] for c in cases])
    return PairedTest(len(cases), mean_difference, float(result.pvalue))
