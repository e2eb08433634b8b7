"""The benchmark's report: Markdown and CSV tables, box plots of per-case Dice, training curves."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

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


def markdown_table(summaries: list[VariantSummary], baseline: VariantSummary | None) -> str:
    names = all_class_names(summaries)
    header = ["variant", "folds"] + [f"Dice {n}" for n in names]
    if baseline is not None:
        header += [f"Δ {n} (p)" for n in names]
    header += ["s/epoch", "s/case", "params (M)", "peak mem (MiB)"]
    if baseline is not None:
        header += ["epoch time vs baseline"]
    rows = []
    for s in summaries:
        row = [s.variant.label + (" (baseline)" if s is baseline else ""), ",".join(map(str, s.fold_ids))]
        row += [f"{_number(s.dice[n][0])} ± {_number(s.dice[n][1])}" if n in s.dice else "n/a" for n in names]
        if baseline is not None:
            for n in names:
                test = s.versus_baseline.get(n)
                row.append("—" if test is None else f"{test.mean_difference:+.3f} ({_p_value(test.p_value)})")
        row += [_number(s.seconds_per_epoch, 2), _number(s.seconds_per_case, 2), f"{s.parameters / 1e6:.2f}",
                _number(s.peak_memory_mib, 0)]
        if baseline is not None:
            row.append(f"{s.seconds_per_epoch / baseline.seconds_per_epoch:.2f}x")
        rows.append(row)
    return render_markdown(header, rows)


def write_csv(summaries: list[VariantSummary], path: Path) -> None:
    """One row per variant x fold x class (plus the fold-independent columns), ready for pandas."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trainer", "configuration", "fold", "class", "dice", "dice_mean_over_folds",
                         "dice_std_over_folds", "delta_vs_baseline", "wilcoxon_p_vs_baseline", "seconds_per_epoch",
                         "seconds_per_case", "parameters", "peak_memory_mib"])
        for s in summaries:
            for fold in s.folds:
                for name, value in fold.mean_dice.items():
                    test = s.versus_baseline.get(name)
                    writer.writerow([
                        s.variant.trainer_name, s.variant.configuration, fold.job.fold, name, f"{value:.4f}",
                        f"{s.dice[name][0]:.4f}", f"{s.dice[name][1]:.4f}",
                        "" if test is None else f"{test.mean_difference:.4f}",
                        "" if test is None else f"{test.p_value:.4g}",
                        f"{fold.seconds_per_epoch:.3f}", f"{fold.seconds_per_case:.3f}", fold.parameters,
                        "" if fold.peak_memory_mib is None else f"{fold.peak_memory_mib:.0f}",
                    ])


def plot_dice_boxes(summaries: list[VariantSummary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = all_class_names(summaries)
    fig, axes = plt.subplots(1, len(names), figsize=(1.2 + 1.1 * len(summaries) * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        data = [[v for v in s.dice_per_case(name).values() if not math.isnan(v)] for s in summaries]
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


def write_report(summaries: list[VariantSummary], baseline: VariantSummary | None, out_dir: Path, title: str,
                 best_configuration: dict | None = None, failures: list[str] | None = None) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"## {title}", ""]
    if baseline is not None:
        parts += [f"Dice: mean ± std over folds (validation, nnU-Net's summary.json). Δ (p): mean per-case "
                  f"difference to the best nnU-Net baseline ({baseline.variant.label}) and the two-sided Wilcoxon "
                  f"signed-rank p-value over the cases both were validated on. s/case: validation inference "
                  f"(sliding window, TTA, export) from the training logs. Peak memory: GPU on CUDA, process RSS "
                  f"otherwise.", ""]
    parts += [markdown_table(summaries, baseline), "", "![Dice per case](dice_per_case.png)", "",
              "![Training curves](training_curves.png)", ""]
    section = best_configuration_section(best_configuration)
    if section:
        parts += [section]
    if failures:
        parts += ["### Failed runs", ""] + [f"- {failure}" for failure in failures] + [""]
    markdown = "\n".join(parts)
    (out_dir / "benchmark.md").write_text(markdown)
    write_csv(summaries, out_dir / "benchmark.csv")
    if summaries:
        plot_dice_boxes(summaries, out_dir / "dice_per_case.png")
        plot_training_curves(summaries, out_dir / "training_curves.png")
    return markdown
