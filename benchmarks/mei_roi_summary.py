"""One table from a `benchmarks/mei_roi_ensemble.sh` work folder: Dice per class and seed of every ROI model, the
image-placed and oracle fusions, the whole-volume models and the resolution ensemble, with s/epoch from nnU-Net's
training logs. Whatever has not run yet shows as "—".

    python benchmarks/mei_roi_summary.py WORKDIR [SEEDS] [SCHEDULE]      (defaults: 2, _5epochs_20iters)
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

CLASSES = ("tube", "nodule")
PLACEMENTS = ("image", "oracle")
SCALES = {"small": {"image": 552, "oracle": 555}, "middle": {"image": 553, "oracle": 556},
          "large": {"image": 554, "oracle": 557}}
WHOLE_VOLUME = ("2d", "3d_fullres")


def trainer_of(base: str, seed: int) -> str:
    return base if seed == 0 else f"{base}_seed{seed}"


def tag_of(seed: int) -> str:
    return "" if seed == 0 else f"_seed{seed}"


def markdown_rows(path: Path) -> dict[str, list[float]]:
    """{first cell: the Dice cells} of an `ensemble-roi` table."""
    if not path.is_file():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 1 + len(CLASSES) and cells[0] not in ("model", "---"):
            rows[cells[0]] = [float(c) for c in cells[1:]]
    return rows


def fold_folder(workdir: Path, dataset: int, trainer: str, configuration: str) -> Path | None:
    found = sorted(workdir.glob(f"results/Dataset{dataset}_*/{trainer}__nnUNetPlans__{configuration}/fold_0"))
    return found[0] if found else None


def seconds_per_epoch(folder: Path | None) -> float | None:
    if folder is None:
        return None
    times = [float(t) for log in sorted(folder.glob("training_log_*.txt"))
             for t in re.findall(r"Epoch time: ([\d.]+) s", log.read_text())]
    return statistics.mean(times) if times else None


def class_dice(summary: Path) -> list[float] | None:
    if not summary.is_file():
        return None
    means = json.loads(summary.read_text())["mean"]
    return [means[str(label)]["Dice"] for label in range(1, len(CLASSES) + 1)]


def validation_dice(folder: Path | None) -> list[float] | None:
    return class_dice(folder / "validation" / "summary.json") if folder else None


def resolution_fusion(workdir: Path, trainer: str) -> dict[str, list[float] | None]:
    """Dice per class of this trainer's 2d + 3d_fullres ensemble (nnU-Net's summary.json), before and after the
    largest component."""
    members = "___".join(f"{trainer}__nnUNetPlans__{c}" for c in WHOLE_VOLUME)
    found = sorted(workdir.glob(f"results/Dataset551_*/ensembles/ensemble___{members}___0"))
    summaries = {"resolution fusion": "summary.json",
                 "resolution fusion + largest component": "postprocessed/summary.json"}
    return {row: class_dice(found[0] / file) if found else None for row, file in summaries.items()}


def roi_entries(workdir: Path, trainer: str, tag: str) -> dict[str, list[float] | None]:
    entries: dict[str, list[float] | None] = {}
    for placement in PLACEMENTS:
        rows = markdown_rows(workdir / f"roi_ensemble_{placement}{tag}.md")
        members = [name for name in rows if f"/{trainer}__" in name]
        for scale, ids in SCALES.items():
            member = [rows[m] for m in members if m.startswith(f"Dataset{ids[placement]}_")]
            entries[f"ROI {scale}, {placement}"] = member[0] if member else None
        complete = len(members) == len(SCALES)
        entries[f"{placement} fusion"] = rows.get("fusion") if complete else None
        entries[f"{placement} fusion + largest component"] = rows.get("fusion + largest component") if complete else None
    return entries


def seed_entries(workdir: Path, trainer: str, tag: str) -> dict[str, list[float] | None]:
    entries = roi_entries(workdir, trainer, tag)
    for configuration in WHOLE_VOLUME:
        entries[f"whole volume, {configuration}"] = validation_dice(fold_folder(workdir, 551, trainer, configuration))
    return entries | resolution_fusion(workdir, trainer)


def epoch_seconds(workdir: Path, trainers: list[str]) -> dict[str, str]:
    folders = {f"ROI {scale}, {placement}": (ids[placement], "2d")
               for scale, ids in SCALES.items() for placement in PLACEMENTS}
    folders |= {f"whole volume, {c}": (551, c) for c in WHOLE_VOLUME}
    seconds = {}
    for row, (dataset, configuration) in folders.items():
        per_seed = [seconds_per_epoch(fold_folder(workdir, dataset, t, configuration)) for t in trainers]
        seconds[row] = " / ".join("—" if s is None else f"{s:.1f}" for s in per_seed)
    return seconds


def cell(values: list[float] | None, index: int) -> str:
    return "—" if values is None else f"{values[index]:.3f}"


def mean_cell(per_seed: list[list[float] | None], index: int) -> str:
    if any(v is None for v in per_seed):
        return "—"
    return f"{statistics.mean(v[index] for v in per_seed):.3f}"  # type: ignore[index]


def summary_table(workdir: Path, seeds: int, schedule: str) -> str:
    trainers = [trainer_of(f"nnUNetTrainer25DPEAttention{schedule}", s) for s in range(seeds)]
    per_seed = [seed_entries(workdir, t, tag_of(s)) for s, t in enumerate(trainers)]
    seconds = epoch_seconds(workdir, trainers)
    header = ["model"] + [f"seed {s}: {c}" for s in range(seeds) for c in CLASSES] + [f"mean: {c}" for c in CLASSES]
    lines = ["| " + " | ".join(header + ["s/epoch (per seed)"]) + " |", "|" + "---|" * (len(header) + 1)]
    for row in per_seed[0]:
        values = [entries[row] for entries in per_seed]
        cells = [cell(v, i) for v in values for i in range(len(CLASSES))]
        cells += [mean_cell(values, i) for i in range(len(CLASSES))]
        lines.append("| " + " | ".join([row] + cells + [seconds.get(row, "")]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("seeds", type=int, nargs="?", default=2)
    parser.add_argument("schedule", nargs="?", default="_5epochs_20iters")
    args = parser.parse_args()
    print(summary_table(args.workdir, args.seeds, args.schedule))


if __name__ == "__main__":
    main()
