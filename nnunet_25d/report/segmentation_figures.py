"""Segmentation figures ("What the models segment"): per chosen case and class, the image slice where the compared
models disagree most with the reference's and every model's contour, the view across the slices (through-plane
reformat, at the physical aspect ratio of the spacing) through the row where they disagree most, and each model's
Dice on every slice; a one-line reading per figure generated from the counts. Built as matplotlib ``Figure`` objects
(no pyplot state), saved as PNGs next to the report."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from nnunet_25d.report.figures import colour, save
from nnunet_25d.report.segmentations import (MODES, CaseVolumes, ClassView, ModelSegmentations, Pick, SliceCounts,
                                             SplitFiles, choose_row, choose_slice, class_values, ignore_value,
                                             pick_cases, read_case, slice_counts, window)
from nnunet_25d.report.setting import classes_of_dataset

HEADING = "### What the models segment"
FIGURE_PREFIX = "segmentation_"
REFERENCE = "reference"
REFERENCE_COLOUR = "white"
MODEL_WIDTH, MODEL_STEP, REFERENCE_EXTRA = 1.4, 0.9, 1.2  # points; see line_widths
IGNORE_COLOUR = "#ffcc00"
HOLDING_COLOUR = "0.9"
FIGURES_HELP = ("segmentation figures in the report: key = per class, the cases of the largest and the median paired "
                "Dice difference of the best 2.5D variant against each baseline (default); all = of every variant; "
                "none = no figures")


def add_figures_argument(parser) -> None:
    """``--figures none|key|all`` on an argparse parser."""
    parser.add_argument("--figures", choices=MODES, default="key", help=FIGURES_HELP)


def file_name(pick: Pick) -> str:
    safe = [re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in (pick.class_name, pick.case)]
    return f"{FIGURE_PREFIX}{safe[0]}_{safe[1]}.png"


@dataclass(frozen=True)
class CaseFigure:
    """What one figure shows: the pick, the slice and row chosen, each model's Dice on the case (from the files)
    and its slice counts."""

    pick: Pick
    slice_index: int
    row: int
    slices: int
    dice: dict[str, float]
    counts: dict[str, SliceCounts]
    file: str


def _plane_axes(ax: Axes, rows: int, columns: int, row_mm: float, column_mm: float, upward: bool
                ) -> tuple[tuple[float, float, float, float], str]:
    height, width = rows * row_mm, columns * column_mm
    return ((0.0, width, 0.0, height) if upward else (0.0, width, height, 0.0)), ("lower" if upward else "upper")


def _contour(ax: Axes, mask: np.ndarray, row_mm: float, column_mm: float, colour_: str, width: float,
             outlined: bool = False) -> None:
    """The mask's outline at the voxel edges (padded, so a mask touching the border closes)."""
    if not mask.any():
        return
    padded = np.pad(mask, 1).astype(float)
    x = (np.arange(padded.shape[1]) - 0.5) * column_mm
    y = (np.arange(padded.shape[0]) - 0.5) * row_mm
    contours = ax.contour(x, y, padded, levels=[0.5], colors=[colour_], linewidths=width)
    if outlined:
        contours.set_path_effects([patheffects.withStroke(linewidth=width + 1.6, foreground="black")])


def line_widths(models: int) -> tuple[float, list[float]]:
    """(reference, each model): each model's outline thinner than the one before, so that where outlines coincide
    every colour still shows, and the reference's widest, under them all."""
    widths = [MODEL_WIDTH + MODEL_STEP * (models - 1 - i) for i in range(models)]
    return (widths[0] if widths else MODEL_WIDTH) + REFERENCE_EXTRA, widths


def draw_plane(ax: Axes, image: np.ndarray | None, low: float, high: float, reference: np.ndarray,
               predictions: list[tuple[np.ndarray, str]], ignore: np.ndarray | None, row_mm: float,
               column_mm: float, upward: bool = False) -> None:
    """One plane (rows x columns) in mm: the image (grey, windowed; black where there is none), the ignore label
    shaded, the reference's outline (white, outlined in black) under each model's (its colour, see
    :func:`line_widths`)."""
    rows, columns = reference.shape
    extent, origin = _plane_axes(ax, rows, columns, row_mm, column_mm, upward)
    shown = image if image is not None else np.zeros(reference.shape, np.float32)
    ax.imshow(shown, cmap="gray", vmin=low, vmax=high, extent=extent, origin=origin, interpolation="nearest")
    if ignore is not None and ignore.any():
        ax.imshow(np.ma.masked_where(~ignore, ignore.astype(float)), cmap=ListedColormap([IGNORE_COLOUR]),
                  alpha=0.35, extent=extent, origin=origin, interpolation="nearest")
    reference_width, widths = line_widths(len(predictions))
    _contour(ax, reference, row_mm, column_mm, REFERENCE_COLOUR, reference_width, outlined=True)
    for (mask, colour_), width in zip(predictions, widths):
        _contour(ax, mask, row_mm, column_mm, colour_, width)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")


def _slice_ticks(ax: Axes, slices: int, slice_mm: float) -> None:
    ticks = np.arange(0, slices, max(1, int(np.ceil(slices / 6))))
    ax.set_yticks((ticks + 0.5) * slice_mm, [str(t) for t in ticks])


def segmentation_figure(volumes: CaseVolumes, view: ClassView, shown: CaseFigure, class_title: str,
                        split_title: str, colours: dict[str, str]) -> Figure:
    """Three panels: the chosen slice, the through-plane view through the chosen row, Dice per slice; a legend
    naming the reference and each model with its Dice on the case."""
    slice_mm, row_mm, column_mm = volumes.spacing
    k, r = shown.slice_index, shown.row
    slices, rows, columns = view.reference.shape
    image = volumes.image
    low, high = window(image, view.reference) if image is not None else (0.0, 1.0)
    ignore = None if view.valid.all() else ~view.valid
    models = [label for label in colours if label in view.predictions]
    width = columns * column_mm  # both views' width; their heights: rows and slices
    ratios = [float(np.clip(width / (rows * row_mm), 0.4, 2.5)),
              float(np.clip(width / (slices * slice_mm), 0.35, 2.5)) if slices > 1 else 0.6, 1.1]
    fig = Figure(figsize=(15.0, 5.6), layout="constrained")
    ax_slice, ax_through, ax_curve = fig.subplots(1, 3, width_ratios=ratios)

    draw_plane(ax_slice, None if image is None else image[k], low, high, view.reference[k],
               [(view.predictions[m][k], colours[m]) for m in models], None if ignore is None else ignore[k],
               row_mm, column_mm)
    ax_slice.axhline((r + 0.5) * row_mm, color="0.85", ls=":", lw=1)
    ax_slice.set_title(f"slice {k} ({slice_mm:g} mm apart); dotted: the row of the view across", fontsize=9)
    ax_slice.set_xlabel("mm")
    ax_slice.set_ylabel("mm")

    if slices > 1:
        draw_plane(ax_through, None if image is None else image[:, r, :], low, high, view.reference[:, r, :],
                   [(view.predictions[m][:, r, :], colours[m]) for m in models],
                   None if ignore is None else ignore[:, r, :], slice_mm, column_mm, upward=True)
        ax_through.axhline((k + 0.5) * slice_mm, color="0.85", ls=":", lw=1)
        _slice_ticks(ax_through, slices, slice_mm)
        ax_through.set_ylabel(f"slice ({slice_mm:g} mm each)")
        ax_through.set_xlabel("mm")
        ax_through.set_title(f"across the slices at row {r} (true aspect); dotted: slice {k}", fontsize=9)
    else:
        ax_through.set_axis_off()
        ax_through.text(0.5, 0.5, "one slice: no view across slices", ha="center", va="center",
                        transform=ax_through.transAxes)

    holding = view.reference.any(axis=(1, 2))
    ax_curve.fill_between(np.arange(slices), 0, holding * 1.0, step="mid", color=HOLDING_COLOUR)
    for m in models:
        ax_curve.plot(np.arange(slices), view.slice_dice(m), marker="o", ms=3, lw=1.3, color=colours[m])
    ax_curve.axvline(k, color="0.5", ls=":", lw=1)
    ax_curve.set_xlim(-0.5, slices - 0.5)
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_curve.set_ylim(-0.03, 1.03)
    ax_curve.set_xlabel("slice")
    ax_curve.set_ylabel("Dice per slice (gaps: slice empty in both)")
    ax_curve.set_title("where along the volume each model fails", fontsize=9)

    reference_width, widths = line_widths(len(models))
    handles = [Line2D([], [], color=REFERENCE_COLOUR, lw=reference_width,
                      path_effects=[patheffects.withStroke(linewidth=reference_width + 1.6, foreground="black")],
                      label=REFERENCE)]
    handles += [Line2D([], [], color=colours[m], lw=max(w, 2.0), label=f"{m} (Dice {_number(shown.dice[m])})")
                for m, w in zip(models, widths)]
    handles.append(Patch(color=HOLDING_COLOUR, label=f"slices holding the class ({int(holding.sum())})"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8,
               facecolor="0.8")
    dice_line = ", ".join(f"{m} {_number(shown.dice[m])}" for m in models)
    notes = f" ({'; '.join(volumes.problems)})" if volumes.problems else ""
    fig.suptitle(f"{volumes.case} · {shown.pick.class_name} ({class_title}) · slice {k} of {slices} · {split_title}"
                 f"\nDice on this case: {dice_line}{notes}", fontsize=10)
    return fig


def _number(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def _reason(pick: Pick) -> str:
    return f"{pick.reason} difference, {pick.variant} − {pick.baseline}: {pick.difference:+.3f} Dice"


def reading_line(shown: CaseFigure, models: list[str]) -> str:
    """One line from the slice counts, e.g. "nnU-Net 2d misses tube on 6 of the 40 slices that hold it and paints
    it on 2 slices without it; 2.5D on 1 and 0"."""
    name, case = shown.pick.class_name, shown.pick.case
    present = [m for m in models if m in shown.counts]
    head = f"**{case}, {name}** ({_reason(shown.pick)}): "
    if not present:
        return head + "no model's prediction could be read."
    first, *rest = present
    counts = shown.counts[first]
    if counts.holding == 0:
        return head + f"{name} is not in {case}'s reference; {first} paints it on {counts.painted} slice" \
            f"{'s' if counts.painted != 1 else ''}" + "".join(f", {m} on {shown.counts[m].painted}" for m in rest) + "."
    holds = "slice that holds it" if counts.holding == 1 else "slices that hold it"
    text = f"{first} misses {name} on {counts.missed} of the {counts.holding} {holds} and paints it on " \
           f"{counts.painted} slice{'s' if counts.painted != 1 else ''} without it"
    text += "".join(f"; {m} on {shown.counts[m].missed} and {shown.counts[m].painted}" for m in rest)
    return head + text + "."


def clear_figures(out_dir: Path) -> None:
    """Remove the segmentation figures of an earlier report in ``out_dir`` (a new one may pick other cases)."""
    for old in out_dir.glob(f"{FIGURE_PREFIX}*.png"):
        old.unlink()


METHODS = ("Segmentation figures: per class, the cases with the largest absolute and the median paired Dice "
           "difference (variant − baseline, the absent/present rule of the comparisons) of {which} against each "
           "baseline on the {split}; in each, the slice where those two models disagree most (voxels predicted by "
           "one and not the other), the view across the slices (through-plane reformat, true aspect ratio) through "
           "the row of that slice where they disagree most, and every model's Dice on every slice. Contours: "
           "reference white, each model in its colour of the other figures. Grey levels: the image's 0.5 and 99.5 "
           "percentiles over the case's reference foreground, widened by a quarter on each side. The reading's "
           "\"misses\": a slice holding the class where the model predicts none of it; \"paints\": a slice "
           "without it in the reference where the model predicts it. Voxels of the ignore label (shaded) count for "
           "no one.")


def segmentation_section(models: list[ModelSegmentations], split: SplitFiles, dataset_json: dict, out_dir: Path,
                         mode: str = "key", colours: dict[str, str] | None = None) -> tuple[str, str]:
    """(the report's "What the models segment" section, its sentence for the Methods section); the figures go to
    ``out_dir`` (those of an earlier report there are removed first). ``mode``: ``none`` | ``key`` | ``all``, see
    :func:`~nnunet_25d.report.segmentations.pick_cases`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_figures(out_dir)
    if mode == "none":
        return "", ""
    colours = colours or {m.label: colour(i) for i, m in enumerate(models)}
    values = class_values(dataset_json)
    titles = classes_of_dataset(dataset_json)
    picks = pick_cases(models, [name for name in values if any(name in m.dice for m in models)], mode)
    methods = METHODS.format(which="the best 2.5D variant" if mode == "key" else "every 2.5D variant",
                             split=split.title)
    if not picks:
        return "\n".join([HEADING, "", f"No figures: no 2.5D variant beside a baseline with cases both scored on "
                                       f"the {split.title}.", ""]), methods
    ignore = ignore_value(dataset_json)
    lines = [HEADING, "", f"{split.title[0].upper()}{split.title[1:]}: reference white, each model in its colour; "
                          f"per figure the slice where the compared models disagree most, the view across the "
                          f"slices, the Dice of every slice.", ""]
    drawn: dict[Pick, list[str]] = {}  # each case is read once; the figures are listed class by class
    for case in dict.fromkeys(p.case for p in picks):
        chosen = [p for p in picks if p.case == case]
        if case not in split.references or not Path(split.references[case]).is_file():
            drawn.update({p: [f"- {case}, {p.class_name}: no reference label image found; its figure is left out.",
                              ""] for p in chosen})
            continue
        volumes = read_case(case, split, models, dataset_json)
        for pick in chosen:
            view = ClassView.of(volumes, values[pick.class_name], ignore)
            k = choose_slice(view, pick.variant, pick.baseline)
            shown = CaseFigure(pick, k, choose_row(view, pick.variant, pick.baseline, k), len(view.reference),
                               {m: view.case_dice(m) for m in view.predictions},
                               {m: slice_counts(view.reference, view.predictions[m]) for m in view.predictions},
                               file_name(pick))
            save(segmentation_figure(volumes, view, shown, titles.get(pick.class_name, ""), split.title, colours),
                 out_dir / shown.file)
            drawn[pick] = [f"![{case}, {pick.class_name}: slice {k} and the view across the slices]({shown.file})",
                           "", reading_line(shown, list(colours)), ""]
    return "\n".join(lines + [line for pick in picks for line in drawn[pick]]), methods
