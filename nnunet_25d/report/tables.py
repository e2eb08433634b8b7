"""Markdown and CSV tables of model rows and paired differences, for any metrics and splits passed in."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from nnunet_25d.report.load import WINDOW_SECONDS
from nnunet_25d.report.metrics import Metric
from nnunet_25d.report.rows import Difference, ModelRow, Score, classes_of, finite, reference_row, splits_of
from nnunet_25d.files import atomic_path


def render_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def number(value: float | None, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if finite(value) else "n/a"


def p_value(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def model_name(row: ModelRow) -> str:
    return row.label + (" (baseline)" if row.baseline else "")


def _score_cell(row: ModelRow, split: str, metric: Metric, class_name: str) -> str:
    score = row.score(split, metric.key, class_name)
    if score is None or not finite(score.mean):
        return "n/a"
    spread = f" ± {metric.format(score.std)}" if finite(score.std) and len(score.per_fold) > 1 else ""
    return metric.format(score.mean) + spread


def scores_table(rows: list[ModelRow], split: str, metrics: list[Metric]) -> str:
    """One row per model; a column per metric x class of ``split`` (mean ± std over folds where several)."""
    columns = [(m, c) for m in metrics for c in classes_of(rows, split, m.key)]
    header = ["model", "trainer", "configuration", "folds", "n (cases)"] + [f"{m.label} {c}" for m, c in columns]
    body = [[model_name(r), f"`{r.trainer}`", r.configuration, ",".join(map(str, r.folds)), r.cases(split)]
            + [_score_cell(r, split, m, c) for m, c in columns] for r in rows]
    return render_markdown(header, body)


DIFFERENT_LOAD = "— (timed under different load)"


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if finite(value) and finite(reference) and reference > 0 else "n/a"


def other_cpu_cell(row: ModelRow) -> str:
    if not finite(row.other_cpu):
        return "not recorded"
    cores = f" of {row.cores}" if row.cores else ""
    return f"{row.other_cpu:.2f}{cores}" + (" ⚠ shared CPUs" if row.contended else "")


def cost_table(rows: list[ModelRow], case_time: str = "inference") -> str:
    """Time per epoch and per case (and ratios to the reference baseline), size, memory, and the load the
    timings were taken under. Where rows name the engine that ran their network, an "engine" column; a case-time
    ratio between different engines says so (an engine's speed-up is not 2.5D's); with the reference's
    ``nnUNetv2_predict`` time, a column against nnU-Net 2d as users run it."""
    reference = reference_row(rows)
    with_memory = any(finite(r.peak_memory_mib) for r in rows)
    with_hours = any(finite(r.training_hours) for r in rows)
    with_engine = any(r.engine for r in rows)
    with_stock = reference is not None and finite(reference.stock_seconds_per_case)
    header = ["model", "s/epoch", f"s/case ({case_time})"] + (["engine"] if with_engine else []) + ["params (M)"] \
        + (["peak mem (MiB)"] if with_memory else []) + (["training (device-hours)"] if with_hours else [])
    if reference is not None:
        header += [f"epoch time vs {reference.label}", f"case time vs {reference.label}"]
    if with_stock:
        header.append(f"case time vs {reference.label} as users run it (`nnUNetv2_predict`, "
                      f"{number(reference.stock_seconds_per_case, 2)} s/case)")
    header.append(f"cores used by other work (max, {int(WINDOW_SECONDS)}-s window)")
    body = []
    for r in rows:
        line = [model_name(r), number(r.seconds_per_epoch, 2), number(r.seconds_per_case, 2)] \
            + ([r.engine or "n/a"] if with_engine else []) + [f"{r.parameters / 1e6:.2f}"] \
            + ([number(r.peak_memory_mib, 0)] if with_memory else []) \
            + ([f"{number(r.training_hours, 2)} {r.training_device}-h" if finite(r.training_hours) else "n/a"]
               if with_hours else [])
        if reference is not None and not r.timed_like(reference):
            line += [DIFFERENT_LOAD] * (3 if with_stock else 2)
        elif reference is not None:
            line += [ratio(r.seconds_per_epoch, reference.seconds_per_epoch), case_ratio(r, reference)]
            if with_stock:
                line.append(ratio(r.seconds_per_case, reference.stock_seconds_per_case))
        body.append(line + [other_cpu_cell(r)])
    return render_markdown(header, body)


def case_ratio(row: ModelRow, reference: ModelRow) -> str:
    """The case-time ratio, marked where the two rows' networks ran on different engines."""
    value = ratio(row.seconds_per_case, reference.seconds_per_case)
    if row.engine and reference.engine and row.engine != reference.engine:
        return f"{value} ({row.engine} vs {reference.engine}: engines differ)"
    return value


FEW_PAIRS_MARK = "†"


def _difference(d: Difference, metric: Metric) -> str:
    if d.n == 0 or not finite(d.mean):
        return "n/a"
    interval = "" if not finite(d.ci_low) else f" [{metric.format(d.ci_low, True)}, {metric.format(d.ci_high, True)}]"
    return metric.format(d.mean, True) + interval + (FEW_PAIRS_MARK if d.few_pairs else "")


def differences_table(differences: list[Difference], metric: Metric) -> str:
    """One row per (class, variant, baseline): n, mean paired difference with its 95 % CI (flagged from fewer than
    ten pairs), the Hodges-Lehmann shift, the permutation p and, for the primary family, its Holm p."""
    primary = any(d.primary for d in differences)
    clustered = any(finite(d.ci_clustered_low) for d in differences)
    header = ["class", "variant", "baseline", "n", f"Δ {metric.label} [95% CI]"] \
        + (["95% CI clustered by fold, seed"] if clustered else []) \
        + ["HL shift", "permutation p" if primary else "permutation p (uncorrected)"] + (["Holm p"] if primary else [])
    body = [[d.class_name, d.variant, d.baseline, str(d.n), _difference(d, metric)]
            + ([_interval(d.ci_clustered_low, d.ci_clustered_high, metric)] if clustered else [])
            + [_shift(d, metric), p_value(d.p)] + ([p_value(d.p_adjusted)] if primary else []) for d in differences]
    table = render_markdown(header, body)
    if any(d.few_pairs for d in differences):
        table += (f"\n\n{FEW_PAIRS_MARK} CI from fewer than 10 pairs: a bootstrap interval under-covers at these "
                  f"sizes (about 80 % at n = 4, 87 % at n = 6 for a nominal 95 %).")
    return table


def _interval(low: float, high: float, metric: Metric) -> str:
    return f"[{metric.format(low, True)}, {metric.format(high, True)}]" if finite(low) else "n/a"


def _shift(d: Difference, metric: Metric) -> str:
    return metric.format(d.hodges_lehmann, True) if finite(d.hodges_lehmann) else "n/a"


def _csv_number(value: float | None, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if finite(value) else ""


SCORE_KEYS = ["label", "trainer", "configuration", "split", "fold", "class"]
COST_KEYS = ["seconds_per_epoch", "seconds_per_case", "parameters", "peak_memory_mib", "other_cpu_cores", "cores",
             "timing_contended"]


def _folds(row: ModelRow, split: str) -> list[int | str]:
    folds = dict.fromkeys(f for s in row.scores if s.split == split for f in s.per_fold)
    return list(folds) or [""]


def _metric_values(score: Score | None, fold: int | str) -> list[str]:
    """In the fold (the mean where there are no per-fold values), the mean over cases and the folds' std."""
    if score is None:
        return ["", "", ""]
    return [_csv_number(score.per_fold.get(fold, score.mean)), _csv_number(score.mean), _csv_number(score.std)]


def write_scores_csv(rows: list[ModelRow], metrics: list[Metric], path: Path) -> None:
    """One row per model x split x fold x class: per metric its value in the fold, the mean over the split's cases
    and the std of the folds' means, then
    the model's costs and load (ready for pandas)."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SCORE_KEYS + [f"{m.key}{suffix}" for m in metrics
                                      for suffix in ("", "_mean", "_std_over_folds")] + COST_KEYS)
        for r in rows:
            costs = [_csv_number(r.seconds_per_epoch, 3), _csv_number(r.seconds_per_case, 3), r.parameters,
                     _csv_number(r.peak_memory_mib, 0), _csv_number(r.other_cpu, 2), r.cores or "", int(r.contended)]
            for split in splits_of([r]):
                for fold in _folds(r, split):
                    for name in classes_of([r], split):
                        values = [v for m in metrics for v in _metric_values(r.score(split, m.key, name), fold)]
                        writer.writerow([r.label, r.trainer, r.configuration, split, fold, name] + values + costs)


def write_differences_csv(differences: list[Difference], path: Path) -> None:
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "baseline", "split", "metric", "class", "n_pairs", "mean_difference",
                         "ci95_low", "ci95_high", "ci95_clustered_low", "ci95_clustered_high", "hodges_lehmann",
                         "permutation_p", "holm_p", "primary"])
        for d in differences:
            writer.writerow([d.variant, d.baseline, d.split, d.metric, d.class_name, d.n,
                             *(f"{v:.6g}" for v in (d.mean, d.ci_low, d.ci_high, d.ci_clustered_low,
                                                    d.ci_clustered_high, d.hodges_lehmann, d.p, d.p_adjusted)),
                             int(d.primary)])
