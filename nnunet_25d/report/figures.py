"""The report's figures, built as matplotlib ``Figure`` objects (no pyplot state): the overview (scores per class,
cost, training curves; titled with dataset, schedule, folds and split) and per-case box plots."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from nnunet_25d.report.metrics import Metric
from nnunet_25d.report.rows import ModelRow, classes_of, finite, reference_row
from nnunet_25d.report.setting import ReportSetting
from nnunet_25d.files import atomic_path

CONTENDED_HATCH = "//"


def colour(index: int) -> str:
    return f"C{index % 10}"


def class_tick(setting: ReportSetting, name: str) -> str:
    what = setting.classes.get(name)
    return f"{name}\n({what})" if what else name


def draw_scores(ax: Axes, rows: list[ModelRow], split: str, metric: Metric, setting: ReportSetting) -> None:
    """Grouped bars: a group per class, a bar per model (error bar: std over folds where there are several)."""
    classes = classes_of(rows, split, metric.key)
    x = np.arange(len(classes))
    width = 0.8 / max(len(rows), 1)
    for index, row in enumerate(rows):
        scores = [row.score(split, metric.key, c) for c in classes]
        means = [s.mean if s is not None else np.nan for s in scores]
        errors = [s.std if s is not None and finite(s.std) and len(s.per_fold) > 1 else 0.0 for s in scores]
        bars = ax.bar(x + (index - (len(rows) - 1) / 2) * width, means, width,
                      yerr=errors if any(errors) else None, color=colour(index),
                      label=row.label + ("" if row.cases(split) == "?" else f" (n = {row.cases(split)} cases)"),
                      capsize=3)
        ax.bar_label(bars, [metric.format(m) if finite(m) else "" for m in means], fontsize=7)
    ax.set_xticks(x, [class_tick(setting, c) for c in classes])
    ax.set_ylabel(metric.axis_label + (" (higher is better)" if metric.higher_is_better else " (lower is better)"))
    ax.set_title(f"{metric.label} per class, {setting.split_title(split)}")
    if metric.bounded:
        ax.set_ylim(0, 1.15)
    ax.legend(fontsize=7)


def draw_cost(ax: Axes, rows: list[ModelRow], attribute: str, ylabel: str, title: str) -> None:
    """One bar per model; ratio to the reference baseline on top; hatched where other work shared the CPUs."""
    values = [getattr(r, attribute) for r in rows]
    reference = reference_row(rows)
    bars = ax.bar(np.arange(len(rows)), values, 0.6, color=[colour(i) for i in range(len(rows))],
                  hatch=[CONTENDED_HATCH if r.contended else "" for r in rows])
    base = getattr(reference, attribute) if reference is not None else float("nan")
    labels = [(f"{v:.2f}" + (f"\n{v / base:.2f}x" if finite(base) and base > 0 and r.timed_like(reference) else ""))
              if finite(v) else "n/a" for v, r in zip(values, rows)]
    ax.bar_label(bars, labels, fontsize=7)
    ax.margins(y=0.25)  # room for the labels and the legend above the tallest bar
    if not any(finite(v) for v in values):
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(np.arange(len(rows)), [r.label for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f" (ratio to {reference.label})" if reference is not None else ""), fontsize=9)
    if any(r.contended for r in rows):
        ax.legend(handles=[Patch(facecolor="white", edgecolor="black", hatch=CONTENDED_HATCH,
                                 label="timed while other work ran")], fontsize=7)


def draw_losses(ax: Axes, rows: list[ModelRow]) -> None:
    for index, row in enumerate(rows):
        for key, style, what in (("train_losses", "-", "training"), ("val_losses", "--", "validation")):
            if row.curves.get(key):
                ax.plot(row.curves[key], ls=style, color=colour(index), label=f"{row.label}: {what}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (nnU-Net's, lower is better)")
    ax.set_title("Training and validation loss", fontsize=9)
    _legend_or_note(ax)


def draw_pseudo_dice(ax: Axes, rows: list[ModelRow]) -> None:
    for index, row in enumerate(rows):
        if row.curves.get("ema_fg_dice"):
            ax.plot(row.curves["ema_fg_dice"], color=colour(index), label=row.label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("pseudo-Dice (EMA, foreground mean)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Pseudo-Dice on validation patches", fontsize=9)
    _legend_or_note(ax)


def _legend_or_note(ax: Axes) -> None:
    if ax.lines:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no training curves", ha="center", va="center", transform=ax.transAxes)


def overview_figure(rows: list[ModelRow], setting: ReportSetting, metrics: list[Metric],
                    splits: list[str]) -> Figure:
    """Top: a panel per split (row) x metric (column) with the scores per class (one metric: the splits side by
    side); bottom: s/epoch, s/case, loss and pseudo-Dice, each on its own labelled axis."""
    splits, metrics = splits or ["cv"], metrics or []
    grid = [[(split, m) for m in metrics] for split in splits] if len(metrics) > 1 else \
        [[(split, m) for split in splits for m in metrics]]
    columns = max(max(len(line) for line in grid), 1)
    fig = Figure(figsize=(max(16.0, 5.5 * columns), 4.6 * (len(grid) + 1)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[len(grid), 1])
    for line, axes in zip(grid, top.subplots(len(grid), columns, squeeze=False)):
        for ax, panel in zip(axes, line + [None] * (columns - len(line))):
            if panel is not None and classes_of(rows, panel[0], panel[1].key):
                draw_scores(ax, rows, panel[0], panel[1], setting)
            else:
                ax.set_axis_off()
    ax_epoch, ax_case, ax_loss, ax_dice = bottom.subplots(1, 4)
    draw_cost(ax_epoch, rows, "seconds_per_epoch", "s / epoch (training)", "Training time per epoch")
    draw_cost(ax_case, rows, "seconds_per_case", f"s / case ({setting.case_time})", "Inference time per case")
    draw_losses(ax_loss, rows)
    draw_pseudo_dice(ax_dice, rows)
    fig.suptitle(setting.title(splits) + (f"\n{setting.subtitle}" if setting.subtitle else ""))
    return fig


def per_case_figure(rows: list[ModelRow], setting: ReportSetting, metric: Metric, split: str) -> Figure:
    """A box plot per class of ``split``: the per-case values of each model (mean marked)."""
    classes = classes_of(rows, split, metric.key)
    fig = Figure(figsize=(max(9.0, 1.5 + 1.1 * max(len(rows), 2) * max(len(classes), 1)), 5), layout="constrained")
    for ax, name in zip(fig.subplots(1, max(len(classes), 1), squeeze=False)[0], classes):
        data = []
        for row in rows:
            score = row.score(split, metric.key, name)
            values = [v for v in (score.per_case if score is not None else ()) if finite(v)]
            data.append(values or [np.nan])
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(np.arange(1, len(rows) + 1), [r.label for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{metric.axis_label} per case")
        ax.set_title(class_tick(setting, name).replace("\n", " "))
        if metric.bounded:
            ax.set_ylim(0, 1.02)
    fig.suptitle(f"{setting.title([split])}\n{metric.label} per case")
    return fig


def paired_figure(pairs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], baseline: str, metric: Metric,
                  title: str) -> Figure:
    """A panel per (variant, class): each case a line from the baseline's value (left) to the variant's (right),
    green where the variant is better, red where worse, grey where equal; the means as a thick black line."""
    keys = list(pairs)
    variants, classes = list(dict.fromkeys(k[0] for k in keys)), list(dict.fromkeys(k[1] for k in keys))
    fig = Figure(figsize=(max(10.0, 3.4 * len(classes)), 1.0 + 3.4 * max(len(variants), 1)), layout="constrained")
    axes = fig.subplots(max(len(variants), 1), max(len(classes), 1), squeeze=False)
    for (variant, name), (ours, theirs) in pairs.items():
        ax = axes[variants.index(variant)][classes.index(name)]
        better = ours > theirs if metric.higher_is_better else ours < theirs
        for our, their, up in zip(ours, theirs, better):
            ax.plot([0, 1], [their, our], color="tab:green" if up else "grey" if our == their else "tab:red",
                    alpha=0.5, lw=1)
        if ours.size:
            ax.plot([0, 1], [theirs.mean(), ours.mean()], color="black", lw=2.5, label="mean")
        ax.set_xticks([0, 1], [baseline, variant], fontsize=7)
        ax.set_xlim(-0.15, 1.15)
        ax.set_title(f"{name} (n = {ours.size})", fontsize=9)
        ax.set_ylabel(metric.axis_label)
        if metric.bounded:
            ax.set_ylim(-0.02, 1.02)
    fig.suptitle(title)
    return fig


def save(fig: Figure, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:  # a report's figure appears whole or not at all
        fig.savefig(tmp, dpi=110)
