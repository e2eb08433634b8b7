"""A per-case metric: how it is shown (name, unit, digits, range), which direction is better, and what a correct
absence scores in paired comparisons. Tables, figures and the
interpretation take metrics as arguments, so a new metric column (e.g. from ``cases.csv``) only needs an entry."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # the column name in cases.csv / results.csv, e.g. "dice"
    label: str  # for tables and axes, e.g. "Dice"
    higher_is_better: bool = True
    unit: str = ""
    digits: int = 3
    bounded: bool = True  # values lie in [0, 1]: axes are drawn from 0 to 1
    perfect: float = 1.0  # what a correct absence scores when paired with a model that painted the class

    @property
    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def best(self, values: list[float]) -> int:
        """Index of the best of ``values`` (all finite)."""
        chooser = max if self.higher_is_better else min
        return values.index(chooser(values))

    def format(self, value: float, signed: bool = False) -> str:
        return f"{value:+.{self.digits}f}" if signed else f"{value:.{self.digits}f}"

    def phrase(self, value: float, signed: bool = False) -> str:
        """For sentences: the number with its unit."""
        return f"{self.format(value, signed)} {self.unit}".rstrip()


DICE = Metric("dice", "Dice")
HD95 = Metric("hd95", "HD95", higher_is_better=False, unit="mm", digits=2, bounded=False, perfect=0.0)
NSD = Metric("nsd", "NSD")
KNOWN_METRICS = {m.key: m for m in (DICE, HD95, NSD)}


def metric(key: str) -> Metric:
    """The declared metric for a cases.csv column name."""
    try:
        return KNOWN_METRICS[key]
    except KeyError:
        raise ValueError(f"unknown metric {key!r}: use one of {', '.join(KNOWN_METRICS)} or declare it in "
                         f"nnunet_25d/report/metrics.py") from None
