"""``benchmarks/mei_roi_summary.py`` turns a Mei benchmark folder into its report table; these tests build the files
the benchmark writes (ensemble tables, nnU-Net summaries and logs) and check that each number lands in its row, and
that another schedule's leftovers in the same folder are never reported as this one's."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "mei_roi_summary.py"
spec = importlib.util.spec_from_file_location("mei_roi_summary", SCRIPT)
summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summary)

TRAINER = "nnUNetTrainer25DPEAttention_10epochs_50iters"


def roi_table(path: Path, members: list[tuple[str, float, float]], fusion: tuple[float, float]) -> None:
    lines = ["| model | tube | nodule |", "|---|---|---|"]
    lines += [f"| {name} | {tube:.3f} | {nodule:.3f} |" for name, tube, nodule in members]
    lines += [f"| fusion | {fusion[0]:.3f} | {fusion[1]:.3f} |", "| fusion + largest component | 0.900 | 0.800 |"]
    path.write_text("\n".join(lines) + "\n")


def write_summary(path: Path, dice: tuple[float, float]) -> None:
    """nnU-Net's summary.json as the summary script reads it: mean Dice per label, and the foreground mean."""
    means = {"1": {"Dice": dice[0]}, "2": {"Dice": dice[1]}}
    path.write_text(json.dumps({"mean": means, "foreground_mean": {"Dice": sum(dice) / 2}}))


def fold(workdir: Path, dataset: str, trainer: str, configuration: str, dice: tuple[float, float],
         epoch_times: list[float]) -> None:
    folder = workdir / "results" / dataset / f"{trainer}__nnUNetPlans__{configuration}" / "fold_0"
    (folder / "validation").mkdir(parents=True)
    write_summary(folder / "validation" / "summary.json", dice)
    (folder / "training_log_1.txt").write_text("".join(f"x: Epoch time: {t} s\n" for t in epoch_times))


def resolution_ensemble(workdir: Path, trainer: str, dice: tuple[float, float], postprocessed: tuple[float, float]):
    members = "___".join(f"{trainer}__nnUNetPlans__{c}" for c in ("2d", "3d_fullres"))
    folder = workdir / "results" / "Dataset551_BodyPhantom" / "ensembles" / f"ensemble___{members}___0"
    (folder / "postprocessed").mkdir(parents=True)
    write_summary(folder / "summary.json", dice)
    write_summary(folder / "postprocessed" / "summary.json", postprocessed)


def members(trainer: str, ids: tuple[int, int, int], value: float) -> list[tuple[str, float, float]]:
    return [(f"Dataset{i}_Phantom/{trainer}__nnUNetPlans__2d", value, value / 2) for i in ids]


def row(table: str, name: str) -> list[str]:
    return next([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
                if line.startswith(f"| {name} |"))


def test_every_number_lands_in_its_row_and_the_mean_of_the_seeds(tmp_path):
    for seed, trainer in enumerate([TRAINER, f"{TRAINER}_seed1"]):
        tag = "" if seed == 0 else "_seed1"
        roi_table(tmp_path / f"roi_ensemble_image{tag}.md", members(trainer, (552, 553, 554), 0.5 + seed / 10),
                  (0.7, 0.6))
        roi_table(tmp_path / f"roi_ensemble_oracle{tag}.md", members(trainer, (555, 556, 557), 0.2), (0.3, 0.1))
        fold(tmp_path, "Dataset551_BodyPhantom", trainer, "3d_fullres", (0.4, 0.3 + seed / 10), [10.0, 20.0])
    fold(tmp_path, "Dataset553_Middle", TRAINER, "2d", (0, 0), [4.0, 6.0])
    table = summary.summary_table(tmp_path, 2, "_10epochs_50iters")
    assert row(table, "ROI middle, image") == ["ROI middle, image", "0.500", "0.250", "0.600", "0.300", "0.550",
                                               "0.275", "5.0 / —"]
    assert row(table, "oracle fusion")[1:7] == ["0.300", "0.100", "0.300", "0.100", "0.300", "0.100"]
    assert row(table, "image fusion + largest component")[1:3] == ["0.900", "0.800"]
    assert row(table, "whole volume, 3d_fullres")[1:] == ["0.400", "0.300", "0.400", "0.400", "0.400", "0.350",
                                                          "15.0 / 15.0"]
    assert row(table, "whole volume, 2d")[1:7] == ["—"] * 6


def test_another_schedules_results_in_the_same_folder_are_not_reported(tmp_path):
    short = "nnUNetTrainer25DPEAttention_5epochs_20iters"
    roi_table(tmp_path / "roi_ensemble_image.md", members(short, (552, 553, 554), 0.5), (0.7, 0.6))
    resolution_ensemble(tmp_path, short, (0.5, 0.4), (0.6, 0.45))
    table = summary.summary_table(tmp_path, 1, "_10epochs_50iters")
    assert row(table, "ROI small, image")[1:3] == ["—", "—"]
    assert row(table, "image fusion")[1:3] == ["—", "—"]
    assert row(table, "resolution fusion + largest component")[1:3] == ["—", "—"]
    assert row(summary.summary_table(tmp_path, 1, "_5epochs_20iters"), "resolution fusion + largest component")[
        1:3] == ["0.600", "0.450"]


def test_the_resolution_ensemble_is_reported_per_class_before_and_after_the_largest_component(tmp_path):
    for seed, trainer in enumerate([TRAINER, f"{TRAINER}_seed1"]):
        resolution_ensemble(tmp_path, trainer, (0.9, 0.1 * seed), (0.95, 0.2 * seed))
    table = summary.summary_table(tmp_path, 2, "_10epochs_50iters")
    assert row(table, "resolution fusion")[1:7] == ["0.900", "0.000", "0.900", "0.100", "0.900", "0.050"]
    assert row(table, "resolution fusion + largest component")[1:7] == ["0.950", "0.000", "0.950", "0.200", "0.950",
                                                                        "0.100"]


def test_a_fusion_of_fewer_than_the_three_scales_is_not_reported_as_the_fusion(tmp_path):
    roi_table(tmp_path / "roi_ensemble_image.md", members(TRAINER, (552,), 0.5), (0.5, 0.25))
    table = summary.summary_table(tmp_path, 1, "_10epochs_50iters")
    assert row(table, "ROI small, image")[1:3] == ["0.500", "0.250"]
    assert row(table, "image fusion")[1:3] == ["—", "—"]
