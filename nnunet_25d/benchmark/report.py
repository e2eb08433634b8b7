"""The benchmark's report: Markdown and CSV tables, box plots of per-case Dice, training curves."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from nnunet_25d.benchmark.statistics import Comparison
from nnunet_25d.benchmark.summary import VariantSummary
from nnunet_25d.comparison import render_markdown


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _p_value(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def all_class_names(summaries: list[VariantSummary]) -> list[str]:
    return list(dict.fromkeys(name for s in summaries for name in s.class_names))


def markdown_table(summaries: list[VariantSummary], baselines: list[str]) -> str:
    names = all_class_names(summaries)
    header = ["variant", "folds"] + [f"Dice {n}" for n in names] + ["s/epoch", "s/case", "params (M)",
                                                                      "peak mem (MiB)"]
    rows = []
    for s in summaries:
        row = [s.variant.label + (" (baseline)" if s.variant.key in baselines else ""),
               ",".join(map(str, s.fold_ids))]
        row += [f"{_number(s.dice[n][0])} ± {_number(s.dice[n][1])}" if n in s.dice else "n/a" for n in names]
        row += [_number(s.seconds_per_epoch, 2), _number(s.seconds_per_case, 2), f"{s.parameters / 1e6:.2f}",
                _number(s.peak_memory_mib, 0)]
        rows.append(row)
    return render_markdown(header, rows)


def _difference(c: Comparison) -> str:
    if c.n_pairs == 0:
        return "n/a"
    interval = "" if math.isnan(c.ci_low) else f" [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
    return f"{c.mean_difference:+.3f}{interval}"


def comparisons_table(comparisons: list[Comparison]) -> str:
    header = ["class", "variant", "baseline", "n", "Δ Dice [95% CI]", "Wilcoxon p", "Holm p"]
    rows = [[c.class_name, c.variant, c.baseline, str(c.n_pairs), _difference(c), _p_value(c.p_value),
             _p_value(c.p_holm)] for c in comparisons]
    return render_markdown(header, rows)


def write_csv(summaries: list[VariantSummary], path: Path) -> None:
    """One row per variant x fold x class (plus the fold-independent columns), ready for pandas."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trainer", "configuration", "fold", "class", "dice", "dice_mean_over_folds",
                         "dice_std_over_folds", "seconds_per_epoch", "seconds_per_case", "parameters",
                         "peak_memory_mib"])
        for s in summaries:
            for fold in s.folds:
                for name in s.class_names:
                    writer.writerow([
                        s.variant.trainer_name, s.variant.configuration, fold.job.fold, name,
                        f"{s.fold_dice(name).get(fold.job.fold, float('nan')):.4f}",
                        f"{s.dice[name][0]:.4f}", f"{s.dice[name][1]:.4f}",
                        f"{fold.seconds_per_epoch:.3f}", f"{fold.seconds_per_case:.3f}", fold.parameters,
                        "" if fold.peak_memory_mib is None else f"{fold.peak_memory_mib:.0f}",
                    ])


def write_comparisons_csv(comparisons: list[Comparison], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "baseline", "class", "n_pairs", "mean_difference", "ci95_low", "ci95_high",
                         "wilcoxon_p", "holm_p"])
        for c in comparisons:
            writer.writerow([c.variant, c.baseline, c.class_name, c.n_pairs, *(f"{v:.6g}" for v in (
                c.mean_difference, c.ci_low, c.ci_high, c.p_value, c.p_holm))])


def plot_dice_boxes(summaries: list[VariantSummary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = all_class_names(summaries)
    fig, axes = plt.subplots(1, len(names), figsize=(1.2 + 1.1 * len(summaries) * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        data = [[v.score for v in s.scores(name).values() if not v.absent] for s in summaries]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(np.arange(1, len(summaries) + 1), [s.variant.label for s in summaries], rotation=30,
                      ha="right", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"Dice per case: {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curves(summaries: list[VariantSummary], path: Path) -> None:
    """Pseudo Dice (EMA) and validation loss per epoch, mean over folds (folds of unequal length are truncated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_dice, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, s in enumerate(summaries):
        for ax, key in ((ax_dice, "ema_fg_dice"), (ax_loss, "val_losses")):
            curves = [f.curves[key] for f in s.folds if f.curves.get(key)]
            if not curves:
                continue
            length = min(map(len, curves))
            ax.plot(np.mean([c[:length] for c in curves], axis=0), color=f"C{index % 10}", label=s.variant.label)
    ax_dice.set_title("pseudo Dice (EMA), mean over folds")
    ax_loss.set_title("validation loss, mean over folds")
    for ax in (ax_dice, ax_loss):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def best_configuration_section(information: dict | None) -> str:
    """Markdown of nnUNetv2_find_best_configuration's ``inference_information.json``."""
    if not information:
        return ""
    best = information["best_model_or_ensemble"]
    models = ", ".join(f"`{m['trainer']}` {m['configuration']}" for m in best["selected_model_or_models"])
    lines = ["### nnUNetv2_find_best_configuration over the matrix", "",
             f"Best: **{models}** — cross-validation Dice {best['result_on_crossval_pre_pp']:.4f}, "
             f"{best['result_on_crossval_post_pp']:.4f} with nnU-Net's postprocessing "
             f"(`{best['postprocessing_file']}`).", "", "| model or ensemble | cross-validation Dice |", "|---|---|"]
    ranked = sorted(information["all_results"].items(), key=lambda item: -item[1])
    lines += [f"| {name} | {value:.4f} |" for name, value in ranked]
    return "\n".join(lines) + "\n"


STATISTICS_NOTE = (
    "Dice: mean ± std over folds of each fold's mean over its validation cases (nnU-Net's summary.json). A class "
    "absent from both reference and prediction is left out; present in exactly one of them, it scores 0. "
    "Comparisons: every variant against every baseline, per class, paired over the n cases both validated; a "
    "pair is left out only when both models correctly predicted the class absent; if only one of them paints it "
    "into an empty case, that one scores 0 and the other 1. Δ: mean paired difference (variant − baseline) with a "
    "95 % bootstrap CI (SciPy, BCa, 9999 resamples of the pairs); p: two-sided Wilcoxon signed-rank (SciPy); Holm "
    "p: adjusted for all comparisons of the table (statsmodels). s/case: validation inference (sliding window, "
    "TTA, export) from the training logs. Peak memory: GPU on CUDA, process RSS otherwise.")


def write_report(summaries: list[VariantSummary], comparisons: list[Comparison], baselines: list[str],
                 out_dir: Path, title: str, best_configuration: dict | None = None,
                 failures: list[str] | None = None) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"## {title}", "", STATISTICS_NOTE, "", markdown_table(summaries, baselines), ""]
    if comparisons:
        parts += ["### Each variant against each baseline", "", comparisons_table(comparisons), ""]
    parts += ["Per-case Dice: `cases.csv`; comparisons: `comparisons.csv`.", "",
              "![Dice per case](dice_per_case.png)", "", "![Training curves](training_curves.png)", ""]
    section = best_configuration_section(best_configuration)
    if section:
        parts += [section]
    if failures:
        parts += ["### Failed runs", ""] + [f"- {failure}" for failure in failures] + [""]
    markdown = "\n".join(parts)
    (out_dir / "benchmark.md").write_text(markdown)
    write_csv(summaries, out_dir / "benchmark.csv")
    write_comparisons_csv(comparisons, out_dir / "comparisons.csv")
    if summaries:
        plot_dice_boxes(summaries, out_dir / "dice_per_case.png")
        plot_training_curves(summaries, out_dir / "training_curves.png")
    return markdown
