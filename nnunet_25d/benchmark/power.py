"""Whether a benchmark's design can reach significance at all, stated before anything is trained.

With n pairs, the smallest two-sided sign-flip permutation p is 2 / 2^n (every difference of one sign); Holm's
smallest adjusted p is that times the family size m. If m · 2 / 2^n > α, no result whatever can be significant."""
from __future__ import annotations

import math
from dataclasses import dataclass

from nnunet_25d.benchmark.statistics import FEW_PAIRS, PERMUTATION_EXACT_UP_TO, PERMUTATION_RESAMPLES

ALPHA = 0.05


def smallest_p(n_pairs: int) -> float:
    """The smallest two-sided p the sign-flip test can give with ``n_pairs`` pairs (1 without pairs)."""
    if n_pairs < 1:
        return 1.0
    exact = 2.0 ** (1 - n_pairs)
    if n_pairs <= PERMUTATION_EXACT_UP_TO:
        return exact
    return max(exact, 2.0 / (PERMUTATION_RESAMPLES + 1))  # SciPy's Monte Carlo p counts the observed pattern


@dataclass(frozen=True)
class Power:
    """The primary family's design: ``family`` comparisons, each over at most ``n_pairs`` pairs."""

    n_pairs: int
    family: int
    alpha: float = ALPHA

    @property
    def smallest_adjusted_p(self) -> float:
        return min(1.0, self.family * smallest_p(self.n_pairs))

    @property
    def reachable(self) -> bool:
        return self.family > 0 and self.smallest_adjusted_p <= self.alpha

    @property
    def pairs_needed(self) -> int:
        """The fewest pairs at which this family size can reach significance."""
        return max(1, math.ceil(1 + math.log2(max(self.family, 1) / self.alpha)))

    @property
    def largest_family(self) -> int:
        """The most comparisons at this n that can still reach significance."""
        return math.floor(self.alpha / smallest_p(self.n_pairs) + 1e-9)

    def sentence(self, what: str) -> str:
        """One line for the command's start and the report's methods."""
        head = (f"Power ({what}): {self.family} comparisons in the primary family, n ≤ {self.n_pairs} pairs each; "
                f"smallest attainable two-sided p {smallest_p(self.n_pairs):.3g}, Holm-adjusted "
                f"{self.smallest_adjusted_p:.3g}")
        if not self.reachable:
            return (f"{head} > α = {self.alpha}: this design cannot reach significance whatever the results. It "
                    f"would with ≥ {self.pairs_needed} cases, or ≤ {self.largest_family} comparisons (fewer "
                    f"variants or baselines).")
        few = f" Intervals from fewer than {FEW_PAIRS} pairs are flagged: they under-cover." \
            if self.n_pairs < FEW_PAIRS else ""
        return f"{head} ≤ α = {self.alpha}: significance is reachable.{few}"
