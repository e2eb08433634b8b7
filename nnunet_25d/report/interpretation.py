"""The two sentences that open a report, generated from the numbers: which model is best per class and by how
much against the baselines; then whether that holds up (paired tests) or, without tests, what it costs."""
from __future__ import annotations

from nnunet_25d.report.metrics import Metric
from nnunet_25d.report.rows import Difference, ModelRow, classes_of, finite, reference_row
from nnunet_25d.report.setting import ReportSetting
from nnunet_25d.report.tables import case_ratio, number, p_value, ratio

ALPHA = 0.05


def best_per_class(rows: list[ModelRow], split: str, metric: Metric) -> dict[str, ModelRow]:
    """Class -> the model with the best mean (ties: the first listed)."""
    best = {}
    for name in classes_of(rows, split, metric.key):
        scored = [r for r in rows if finite(r.value(split, metric.key, name))]
        if scored:
            best[name] = scored[metric.best([r.value(split, metric.key, name) for r in scored])]
    return best


def _against_baselines(rows: list[ModelRow], winner: ModelRow, split: str, metric: Metric, name: str) -> str:
    value = winner.value(split, metric.key, name)
    score = winner.score(split, metric.key, name)
    cases = [f"n = {score.n}"] if score is not None and score.n is not None else []
    margins = [f"{metric.phrase(value - b.value(split, metric.key, name), signed=True)} vs {b.label}"
               for b in rows if b.baseline and b is not winner and finite(b.value(split, metric.key, name))]
    notes = cases + margins
    return metric.phrase(value) + (f" ({', '.join(notes)})" if notes else "")


def best_sentence(rows: list[ModelRow], split: str, metric: Metric, setting: ReportSetting) -> str:
    best = best_per_class(rows, split, metric)
    if not best:
        return f"No {metric.label} results on the {setting.split_title(split)} yet."
    where = f"on the {setting.split_title(split)}"
    direction = "" if metric.higher_is_better else " (lower is better)"
    winners = {id(r): r for r in best.values()}
    if len(winners) == 1:
        winner = next(iter(winners.values()))
        per_class = ", ".join(f"{name} {_against_baselines(rows, winner, split, metric, name)}" for name in best)
        return f"{winner.label} has the best {metric.label}{direction} for every class {where}: {per_class}."
    per_class = "; ".join(f"{name}: {r.label} {_against_baselines(rows, r, split, metric, name)}"
                          for name, r in best.items())
    return f"Best {metric.label}{direction} per class {where}: {per_class}."


def _difference_text(d: Difference, metric: Metric, labels: dict[str, str]) -> str:
    interval = f" [{metric.format(d.ci_low, True)}, {metric.format(d.ci_high, True)}]" if finite(d.ci_low) else ""
    return f"{d.class_name}, {labels.get(d.variant, d.variant)} vs {labels.get(d.baseline, d.baseline)} " \
           f"{metric.phrase(d.mean, True)}{interval} (p {_p_phrase(d.p_adjusted)})"


def _p_phrase(p: float) -> str:
    text = p_value(p)
    return f"< {text[1:]}" if text.startswith("<") else f"= {text}"


def significance_sentence(rows: list[ModelRow], differences: list[Difference], split: str,
                          metric: Metric) -> str:
    """For each class, its best non-baseline model against every baseline: significant (Holm-adjusted p < 0.05)
    or not."""
    best = best_per_class([r for r in rows if not r.baseline], split, metric)
    chosen = [d for d in differences if d.split == split and d.metric == metric.key and d.class_name in best
              and d.variant == best[d.class_name].key]
    if not chosen:
        return "No paired comparison of these models with a baseline is available."
    labels = {r.key: r.label for r in rows}
    significant = [d for d in chosen if finite(d.p_adjusted) and d.p_adjusted < ALPHA]
    other = [d for d in chosen if d not in significant]
    parts = [f"{what} — " + "; ".join(_difference_text(d, metric, labels) for d in group)
             for what, group in (("significant", significant), ("not significant", other)) if group]
    return f"The best variant per class against each baseline, paired over cases (mean difference [95 % CI], " \
           f"Holm-adjusted p < {ALPHA} counts as significant): {'; '.join(parts)}."


def cost_sentence(rows: list[ModelRow], split: str, metric: Metric, setting: ReportSetting) -> str:
    """Without paired tests: say so, and what the best non-baseline model costs against the reference."""
    candidates = [r for r in rows if not r.baseline] or rows
    wins = best_per_class(candidates, split, metric)
    model = max(candidates, key=lambda r: sum(w is r for w in wins.values()))
    reference = reference_row(rows)
    caution = f"These means come from the {setting.split_title(split)}, without a significance test"
    if reference is None or reference is model:
        return f"{caution}; {model.label} took {number(model.seconds_per_epoch, 2)} s per training epoch and " \
               f"{number(model.seconds_per_case, 2)} s per case{_contention_note(rows)}."
    if not model.timed_like(reference):
        return f"{caution}; {model.label}'s and {reference.label}'s timings were taken under different load " \
               f"({_cores(model)} vs {_cores(reference)} cores busy with other work) and are not compared."
    epoch = ratio(model.seconds_per_epoch, reference.seconds_per_epoch)
    case = case_ratio(model, reference)
    return f"{caution}; {model.label} took {epoch} {reference.label}'s time per training epoch and {case} its " \
           f"time per case{_contention_note(rows)}."


def _cores(row: ModelRow) -> str:
    return number(row.other_cpu, 2)


def _contention_note(rows: list[ModelRow]) -> str:
    contended = [r.label for r in rows if r.contended]
    return f" (timed while other work used the CPUs for {', '.join(contended)}: see the warning)" if contended else ""


def reading(rows: list[ModelRow], split: str, metric: Metric, setting: ReportSetting,
            differences: list[Difference] | None = None) -> str:
    """Two sentences: the best model per class with its margins over the baselines; then significance (with
    paired differences) or the cost (without)."""
    if not rows:
        return "No finished runs to report yet."
    second = significance_sentence(rows, differences, split, metric) if differences \
        else cost_sentence(rows, split, metric, setting)
    return f"{best_sentence(rows, split, metric, setting)} {second}"
