"""The shared report engine on hand-built results (no training): the figure's title and axes (matplotlib objects,
not pixels), class names from dataset.json, the machine, the flag for timings that shared the CPUs, the two-sentence
reading, any metrics and splits; the demo's and the benchmark's reports through it."""
from __future__ import annotations

import csv
import importlib.metadata
import json
import math
import os
from dataclasses import replace

import pytest
import torch

from nnunet_25d.report.document import contention_warning, machine_section, methods_section, verdict
from nnunet_25d.report.figures import overview_figure
from nnunet_25d.report.interpretation import reading
from nnunet_25d.report.load import OTHER_CPU_KEY, read_other_cpu, record_other_cpu
from nnunet_25d.report.machine import Machine, this_machine
from nnunet_25d.report.metrics import DICE, HD95, metric
from nnunet_25d.report.rows import Difference, ModelRow, Score
from nnunet_25d.report.setting import ReportSetting, classes_of_dataset, schedule_of
from nnunet_25d.report.tables import cost_table, scores_table, write_scores_csv

NAN = float("nan")
DATASET_JSON = {"labels": {"background": 0, "liver": 1, "tumour": 2}, "description": "livers and their tumours"}
MACHINE = Machine("Test CPU 3000", 2, None, "9.9.9", "2.8.1")
CURVES = {"train_losses": [0.4, 0.1, -0.3], "val_losses": [0.5, 0.2, -0.2], "ema_fg_dice": [0.1, 0.4, 0.6]}


def setting(folds: tuple[int, ...] = (0,)) -> ReportSetting:
    return ReportSetting("Dataset042_Liver", "10 epochs x 50 iterations", folds, classes_of_dataset(DATASET_JSON),
                         (MACHINE,), DATASET_JSON["description"], "test-set prediction", "nnU-Net 2d vs 2.5D")


def row(label: str, configuration: str, dice: dict[str, float], baseline: bool = False, split: str = "test",
        seconds: tuple[float, float] = (10.0, 2.0), other_cpu: float = NAN, cores: int | None = 2,
        curves: dict | None = None) -> ModelRow:
    trainer = ("nnUNetTrainer" if baseline else "nnUNetTrainer25D") + "_10epochs_50iters"
    scores = [Score(split, "dice", name, value, per_fold={0: value}) for name, value in dice.items()]
    return ModelRow(label, trainer, configuration, scores, *seconds, 1_000_000, other_cpu=other_cpu, cores=cores,
                    curves=curves or {}, baseline=baseline, folds=(0,))


def demo_rows(other_cpu: float = NAN) -> list[ModelRow]:
    return [row("nnU-Net 2d", "2d", {"liver": 0.855, "tumour": 0.005}, True, seconds=(17.58, 4.57),
                curves=CURVES),
            row("2.5D", "2d", {"liver": 0.969, "tumour": 0.953}, seconds=(21.03, 3.88), other_cpu=other_cpu,
                curves={key: [v + 0.05 for v in values] for key, values in CURVES.items()})]


def axes_by_ylabel(fig) -> dict:
    return {ax.get_ylabel(): ax for ax in fig.axes if ax.get_ylabel()}


def test_the_figure_is_titled_with_dataset_schedule_fold_and_split():
    fig = overview_figure(demo_rows(), setting(), [DICE], ["test", "cv"])
    title = fig.get_suptitle()
    for part in ("Dataset042_Liver (ID 42)", "10 epochs x 50 iterations", "test set (fold-0 model)",
                 "validation fold 0", "nnU-Net 2d vs 2.5D"):
        assert part in title
    assert setting((0, 1, 2, 3, 4)).split_title("cv") == "5-fold CV"
    assert setting((0, 1)).split_title("cv") == "CV over folds 0,1"
    assert setting((0, 1)).split_title("test") == "test set (ensemble of folds 0,1)"


def test_seconds_per_epoch_and_per_case_have_their_own_labelled_axes():
    rows = demo_rows()
    axes = axes_by_ylabel(overview_figure(rows, setting(), [DICE], ["test"]))
    epoch, case = axes["s / epoch (training)"], axes["s / case (test-set prediction)"]
    assert epoch is not case
    assert [p.get_height() for p in epoch.patches] == [17.58, 21.03]
    assert [p.get_height() for p in case.patches] == [4.57, 3.88]
    assert [t.get_text() for t in epoch.get_xticklabels()] == ["nnU-Net 2d", "2.5D"]
    ratios = " ".join(t.get_text() for t in epoch.texts)
    assert f"{21.03 / 17.58:.2f}x" in ratios and "1.00x" in ratios


def test_loss_and_pseudo_dice_are_on_separate_labelled_axes():
    rows = demo_rows()
    axes = axes_by_ylabel(overview_figure(rows, setting(), [DICE], ["test"]))
    loss = next(ax for label, ax in axes.items() if label.startswith("loss"))
    pseudo = next(ax for label, ax in axes.items() if label.startswith("pseudo-Dice"))
    assert loss is not pseudo and loss.get_xlabel() == pseudo.get_xlabel() == "epoch"
    assert [list(line.get_ydata()) for line in loss.lines] == [
        r.curves[key] for r in rows for key in ("train_losses", "val_losses")]
    assert [list(line.get_ydata()) for line in pseudo.lines] == [r.curves["ema_fg_dice"] for r in rows]
    assert pseudo.get_ylim() == (0, 1.05)


def test_class_names_come_from_dataset_json():
    assert classes_of_dataset({"labels": {"background": 0, "kidney": [1, 2], "tumour": 2}}) == {
        "kidney": "labels 1, 2", "tumour": "label 2"}
    fig = overview_figure(demo_rows(), setting(), [DICE], ["test"])
    dice = axes_by_ylabel(fig)["Dice (higher is better)"]
    assert [t.get_text() for t in dice.get_xticklabels()] == ["liver\n(label 1)", "tumour\n(label 2)"]
    assert [t.get_text() for t in dice.get_legend().get_texts()] == ["nnU-Net 2d", "2.5D"]
    assert [p.get_height() for p in dice.patches] == [0.855, 0.005, 0.969, 0.953]
    methods = methods_section(demo_rows(), setting(), ["test"])
    assert "**liver** = label 1, **tumour** = label 2" in methods and "livers and their tumours" in methods


def test_the_figure_and_the_table_say_how_many_cases_stand_behind_each_mean():
    rows = demo_rows()
    rows[0].scores = [replace(score, n_cases=7) for score in rows[0].scores]
    rows[1].scores = [replace(score, per_case=(0.9, NAN, 0.8)) for score in rows[1].scores]
    dice = axes_by_ylabel(overview_figure(rows, setting(), [DICE], ["test"]))["Dice (higher is better)"]
    assert [t.get_text() for t in dice.get_legend().get_texts()] == ["nnU-Net 2d (n = 7 cases)",
                                                                      "2.5D (n = 2 cases)"]
    assert "| folds | n (cases) |" in scores_table(rows, "test", [DICE]) and "| 0 | 2 | 0.969 |" in \
        scores_table(rows, "test", [DICE])


def test_case_counts_and_load_comparisons_of_a_row():
    r = row("2.5D", "2d", {})
    r.scores = [Score("cv", "dice", name, 0.5, n_cases=n) for name, n in (("a", 4), ("b", 2), ("c", 5))]
    assert r.cases("cv") == "2-5" and r.cases("test") == "?"
    reference = row("nnU-Net 2d", "2d", {}, True, other_cpu=1.06, cores=2)
    unknown_cores = row("2.5D", "2d", {}, other_cpu=1.36, cores=None)
    assert not unknown_cores.timed_like(reference), "the reference's cores judge a row recorded without them"


def test_the_machine_section_names_cpu_cores_gpu_torch_and_nnunet():
    machine = this_machine()
    text = machine_section((machine,))
    assert f"{os.cpu_count()} cores" in text and f"torch {torch.__version__}" in text
    assert f"nnU-Net (nnunetv2) {importlib.metadata.version('nnunetv2')}" in text and "no GPU" in text
    assert machine.cpu and machine.cpu in text
    assert machine_section((MACHINE,)) in methods_section(demo_rows(), setting(), ["test"])


@pytest.mark.parametrize("other_cpu, flagged", [(1.0, True), (0.51, True), (0.5, False), (0.05, False)])
def test_the_flag_appears_only_when_other_work_took_over_a_quarter_of_the_cores(tmp_path, other_cpu, flagged):
    rows = demo_rows(other_cpu=other_cpu)  # the 2.5D row's timings, on 2 cores
    head = verdict("t", rows, setting(), [DICE], ["test"])
    methods = methods_section(rows, setting(), ["test"])
    table = cost_table(rows)
    warning = (f"**⚠ Timings taken while other work ran:** 2.5D (other processes used up to {other_cpu:.1f} of 2 "
               f"cores)")
    assert (warning in head) == flagged
    assert ("⚠" in head) == flagged and ("⚠ shared CPUs" in table) == flagged
    assert f"| {other_cpu:.2f} of 2" in table
    assert ("| — (timed under different load) | — (timed under different load) |" in table) == flagged
    assert ("1.20x" in table) != flagged, "2.5D's epoch ratio only where the loads compare"
    assert "⚠" not in methods, "the warning is written once, at the top"
    assert (f"at most {other_cpu:.2f} cores in any 30-s window, within 25% of the cores" in methods) != flagged
    write_scores_csv(rows, [DICE], tmp_path / "results.csv")
    flags = {r["label"]: r["timing_contended"] for r in csv.DictReader(open(tmp_path / "results.csv"))}
    assert flags == {"nnU-Net 2d": "0", "2.5D": "1" if flagged else "0"}
    epoch = axes_by_ylabel(overview_figure(rows, setting(), [DICE], ["test"]))["s / epoch (training)"]
    assert [p.get_hatch() or "" for p in epoch.patches] == ["", "//" if flagged else ""]


def test_without_a_record_of_other_work_the_report_says_so():
    rows = demo_rows()
    for r in rows:
        r.other_cpu, r.cores = NAN, None
    assert "not recorded" in contention_warning(rows) and "⚠" not in cost_table(rows)


def test_a_fold_keeps_the_highest_other_work_of_its_runs(tmp_path):
    from nnunet_25d.benchmark.measure import merged_with

    record = tmp_path / "benchmark_resources.json"
    record.write_text(json.dumps({"peak_host_memory_mib": 100.0}))
    for peak in (1.5, 3.0, 2.0):
        record_other_cpu(record, peak, cores=2)
    assert read_other_cpu(record) == (3.0, 2)
    assert json.loads(record.read_text())["peak_host_memory_mib"] == 100.0
    assert read_other_cpu(tmp_path / "none.json") == (pytest.approx(NAN, nan_ok=True), None)
    previous = {"commands": [["a"]], "wall_seconds": 1.0, OTHER_CPU_KEY: 4.0, "cpu_count": 8}
    combined = merged_with({"commands": [["b"]], "wall_seconds": 2.0, OTHER_CPU_KEY: 1.0, "cpu_count": 2}, previous)
    assert (combined[OTHER_CPU_KEY], combined["wall_seconds"], combined["cpu_count"]) == (4.0, 3.0, 2)


def test_a_new_record_is_created_with_its_folders_and_this_machines_cores(tmp_path):
    path = tmp_path / "fold_0" / "timing" / "benchmark_resources.json"
    record_other_cpu(path, 0.4)
    assert path.read_text() == json.dumps({OTHER_CPU_KEY: 0.4, "cpu_count": os.cpu_count()}, indent=2)
    other_machine = os.cpu_count() + 1
    record_other_cpu(path, float("nan"), cores=other_machine)  # a run without a reading keeps the last one
    assert read_other_cpu(path) == (0.4, other_machine)


def four_models() -> list[ModelRow]:
    return [row("nnU-Net 2d", "2d", {"liver": 0.90, "tumour": 0.40}, True, seconds=(10.0, 2.0)),
            row("nnU-Net 3d_fullres", "3d_fullres", {"liver": 0.93, "tumour": 0.55}, True, seconds=(40.0, 8.0)),
            row("2.5D", "2d", {"liver": 0.92, "tumour": 0.70}, seconds=(12.0, 3.0)),
            row("MorphMLP", "2d", {"liver": 0.91, "tumour": 0.65}, seconds=(30.0, 5.0))]


def test_the_reading_names_the_best_model_per_class_and_its_margins_over_the_baselines():
    text = reading(four_models(), "test", DICE, setting())
    first, second = text.split(". ", 1)
    assert first == ("Best Dice per class on the test set (fold-0 model): liver: nnU-Net 3d_fullres 0.930 "
                     "(+0.030 vs nnU-Net 2d); tumour: 2.5D 0.700 (+0.300 vs nnU-Net 2d, +0.150 vs nnU-Net "
                     "3d_fullres)")
    # without paired tests: says so, and the cost of the variant that wins most classes against 2d
    assert second == ("These means come from the test set (fold-0 model), without a significance test; 2.5D "
                      "took 1.20x nnU-Net 2d's time per training epoch and 1.50x its time per case.")
    one_winner = reading(demo_rows(), "test", DICE, setting())
    assert one_winner.startswith("2.5D has the best Dice for every class on the test set (fold-0 model): liver "
                                 "0.969 (+0.114 vs nnU-Net 2d), tumour 0.953 (+0.948 vs nnU-Net 2d).")


def test_the_reading_uses_the_adjusted_p_of_the_best_variant_only():
    def difference(variant: str, baseline: str, mean: float, p_adjusted: float) -> Difference:
        return Difference(variant, baseline, "test", "dice", "tumour", 20, mean, mean - 0.1, mean + 0.1, p_adjusted / 4,
                          p_adjusted)

    differences = [difference("2.5D", "nnU-Net 2d", 0.30, 0.004), difference("2.5D", "nnU-Net 3d_fullres", 0.15, 0.2),
                   difference("MorphMLP", "nnU-Net 2d", 0.25, 0.001)]
    second = reading(four_models(), "test", DICE, setting(), differences).split(". ", 1)[1]
    # MorphMLP's significant difference stays out: it is not the best variant of any class
    assert second == ("The best variant per class against each baseline, paired over cases (mean difference "
                      "[95 % CI], Holm-adjusted p < 0.05 counts as significant): significant — tumour, 2.5D vs "
                      "nnU-Net 2d +0.300 [+0.200, +0.400] (p = 0.004); not significant — tumour, 2.5D vs nnU-Net "
                      "3d_fullres +0.150 [+0.050, +0.250] (p = 0.200).")


def test_a_lower_is_better_metric_picks_the_smallest_value():
    rows = [row("nnU-Net 2d", "2d", {}, True), row("2.5D", "2d", {})]
    for r, value in zip(rows, (7.5, 3.0)):
        r.scores = [Score("test", "hd95", "tumour", value)]
    assert reading(rows, "test", HD95, setting()).startswith(
        "2.5D has the best HD95 (lower is better) for every class on the test set (fold-0 model): tumour 3.00 mm "
        "(-4.50 mm vs nnU-Net 2d).")


def test_an_unknown_metric_column_names_the_known_ones_and_where_to_declare_it():
    assert metric("hd95") is HD95
    with pytest.raises(ValueError) as error:
        metric("assd")
    assert str(error.value) == ("unknown metric 'assd': use one of dice, hd95, nsd or declare it in "
                                "nnunet_25d/report/metrics.py")


def test_tables_and_figure_render_the_metrics_and_splits_passed_in(tmp_path):
    rows = []
    for label, baseline, dice, hd95 in (("nnU-Net 2d", True, 0.8, 6.0), ("2.5D", False, 0.9, 4.0)):
        r = row(label, "2d", {}, baseline)
        r.folds = (0, 1)
        r.scores = [Score("cv", "dice", "liver", dice, 0.02, {0: dice - 0.01, 1: dice + 0.01}),
                    Score("cv", "hd95", "liver", hd95, 0.5, {0: hd95 - 0.5, 1: hd95 + 0.5}),
                    Score("test", "dice", "liver", dice + 0.01), Score("test", "hd95", "liver", hd95 + 1)]
        rows.append(r)
    table = scores_table(rows, "cv", [DICE, HD95])
    assert "| Dice liver | HD95 liver |" in table and "| 0.900 ± 0.020 | 4.00 ± 0.50 |" in table
    write_scores_csv(rows, [DICE, HD95], tmp_path / "scores.csv")
    lines = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert [(r["split"], r["fold"], r["dice"], r["hd95"]) for r in lines if r["label"] == "2.5D"] == [
        ("cv", "0", "0.8900", "3.5000"), ("cv", "1", "0.9100", "4.5000"), ("test", "", "0.9100", "5.0000")]
    fig = overview_figure(rows, setting((0, 1)), [DICE, HD95], ["cv", "test"])
    titles = {ax.get_title(): ax for ax in fig.axes}
    assert set(titles) >= {"Dice per class, CV over folds 0,1", "HD95 per class, CV over folds 0,1",
                           "Dice per class, test set (ensemble of folds 0,1)",
                           "HD95 per class, test set (ensemble of folds 0,1)"}
    hd95 = titles["HD95 per class, test set (ensemble of folds 0,1)"]
    assert hd95.get_ylabel() == "HD95 (mm) (lower is better)"
    assert [p.get_height() for p in hd95.patches] == [7.0, 5.0]


def test_schedule_from_the_trainer_name():
    assert schedule_of("nnUNetTrainer25D_5slices_10epochs_50iters") == "10 epochs x 50 iterations"
    assert schedule_of("nnUNetTrainer_5epochs") == "5 epochs x 250 iterations"
    assert schedule_of("nnUNetTrainer") == "1000 epochs x 250 iterations (nnU-Net's default)"


def test_the_demo_report_goes_through_the_engine(tmp_path):
    from nnunet_25d.benchmark.comparison import ModelResult, write_report

    results = [ModelResult("nnU-Net 2d", "nnUNetTrainer_10epochs_50iters", "2d", {"liver": 0.855, "tumour": 0.005},
                           {"liver": 0.8, "tumour": 0.1}, {"liver": 4, "tumour": 3}, {"liver": 5, "tumour": 5},
                           17.58, 4.57, 1_000_000, other_cpu=0.1, cores=2),
               ModelResult("2.5D", "nnUNetTrainer25D_10epochs_50iters", "2d", {"liver": 0.969, "tumour": 0.953},
                           {"liver": 0.95, "tumour": 0.9}, {"liver": 4, "tumour": 4}, {"liver": 5, "tumour": 5},
                           21.03, 3.88, 1_100_000, other_cpu=1.2, cores=2)]
    markdown = write_report(results, {"2.5D": CURVES}, tmp_path, setting())
    lines = markdown.splitlines()
    assert lines[0] == "## Dataset042_Liver: nnU-Net 2d vs 2.5D"
    assert lines[2].startswith("2.5D has the best Dice for every class on the test set (fold-0 model)")
    assert "**⚠ Timings taken while other work ran:** 2.5D (other processes used up to 1.2 of 2 cores)" in markdown
    assert "| nnU-Net 2d (baseline) | `nnUNetTrainer_10epochs_50iters` | 2d | 0 | 3-4 | 0.855 | 0.005 |" in markdown
    assert "| 2.5D | `nnUNetTrainer25D_10epochs_50iters` | 2d | 0 | 5 | 0.950 | 0.900 |" in markdown
    assert "timings were taken under different load (1.20 vs 0.10 cores busy with other work) and are not " \
           "compared" in lines[2]
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert {(r["trainer"], r["split"], r["class"], r["dice"]) for r in rows} >= {
        ("nnUNetTrainer25D_10epochs_50iters", "test", "tumour", "0.9530"),
        ("nnUNetTrainer_10epochs_50iters", "cv", "liver", "0.8000")}
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "results.json").read_text())[1]["other_cpu"] == 1.2


def test_the_benchmark_report_goes_through_the_engine(tmp_path):
    from nnunet_25d.benchmark.collect import FoldResult
    from nnunet_25d.benchmark.matrix import RESOURCES_FILE, Job, Variant
    from nnunet_25d.benchmark.report import write_report
    from nnunet_25d.benchmark.statistics import CaseScore
    from nnunet_25d.benchmark.summary import VariantSummary, compare_all

    root = tmp_path / "results" / "Dataset042_Liver"
    recorded = {"cpu": "Recorded CPU", "cores": 4, "gpu": "Recorded GPU", "torch": "9.9", "nnunetv2": "2.8.1"}
    summaries = []
    for trainer, liver, other_cpu in (("nnUNetTrainer", 0.80, 0.5), ("nnUNetTrainer25D", 0.90, 2.5)):
        variant = Variant(trainer, "2d", (10, 50))
        folds, cases = [], []
        for fold in (0, 1):
            job = Job(variant, fold, "42", root)
            job.fold_folder.mkdir(parents=True)
            (job.model_folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
            (job.fold_folder / RESOURCES_FILE).write_text(json.dumps({OTHER_CPU_KEY: other_cpu, "cpu_count": 4,
                                                                      "machine": recorded}))
            fold_cases = [CaseScore(variant.key, fold, f"c{fold}{i}", "liver", liver + 0.01 * i, 100, 100)
                          for i in range(6)]
            cases += fold_cases
            folds.append(FoldResult(job, fold_cases, 10.0, 2.0, 1000, None, dict(CURVES)))
        summaries.append(VariantSummary(variant, folds, cases))
    baselines = ["nnUNetTrainer:2d"]
    markdown = write_report(summaries, compare_all(summaries, baselines), baselines, tmp_path / "out", "bench")
    assert "nnUNetTrainer25D 2d has the best Dice for every class on the CV over folds 0,1: liver 0.925 (n = 12, +0.100 vs " \
           "nnUNetTrainer 2d)" in markdown
    assert "counts as significant): significant — liver, nnUNetTrainer25D 2d vs nnUNetTrainer 2d +0.100" in markdown
    assert "CPU Recorded CPU, 4 cores; GPU Recorded GPU" in markdown
    assert ("**⚠ Timings taken while other work ran:** nnUNetTrainer25D 2d (other processes used up to 2.5 of 4 "
            "cores)") in markdown
    assert "nnUNetTrainer 2d (baseline)" in markdown and "10 epochs x 50 iterations" in markdown
    # top-down: the verdict (the reading, the warning), the key table, ..., Methods last, each part written once
    lines = markdown.splitlines()
    headings = [line for line in lines if line.startswith("### ")]
    assert headings[0] == "### Dice per class, CV over folds 0,1" and headings[-1] == "### Methods"
    verdict_lines = [line for line in lines[1:lines.index(headings[0])] if line]
    assert len(verdict_lines) == 2 and verdict_lines[1].startswith("> **⚠ Timings taken while other work ran:**")
    methods = markdown[markdown.index("### Methods"):]
    for part in ("**Data.**", "**Machine.**", "Scores: mean over the split's cases", "**Power (",
                 "Primary comparison, declared before the run"):
        assert part in methods and markdown.count(part) == 1, part
    assert "⚠" not in methods
    for picture in ("benchmark.png", "dice_per_case.png"):
        assert (tmp_path / "out" / picture).stat().st_size > 10_000
    comparisons = [r for r in csv.DictReader(open(tmp_path / "out" / "comparisons.csv")) if r["metric"] == "dice"]
    assert [(r["variant"], r["baseline"], r["split"], r["n_pairs"]) for r in comparisons] == [
        ("nnUNetTrainer25D:2d", "nnUNetTrainer:2d", "cv", "12")]
    assert not math.isnan(float(comparisons[0]["holm_p"]))


def test_training_hours_count_every_gpu_of_every_measured_run(tmp_path):
    from nnunet_25d.benchmark.collect import FoldResult
    from nnunet_25d.benchmark.matrix import RESOURCES_FILE, Job, Variant
    from nnunet_25d.benchmark.report import training_hours

    def fold(index: int, record: dict) -> FoldResult:
        job = Job(Variant("nnUNetTrainer25D", "2d", seed=index // 2), index % 2, "42", tmp_path)
        job.fold_folder.mkdir(parents=True)
        (job.fold_folder / RESOURCES_FILE).write_text(json.dumps(record))
        return FoldResult(job, [], 10.0, 2.0, 1000, None)

    gpu = {"machine": {"gpu": "H200"}}
    folds = [fold(0, {**gpu, "wall_seconds": 3600.0, "commands": [["nnUNetv2_train", "-num_gpus", "2", "--npz"]]}),
             fold(1, {**gpu, "wall_seconds": 1800.0, "commands": [["nnUNetv2_train", "--npz"]]}),
             fold(2, {**gpu, "wall_seconds": 1800.0})]  # a seeded repeat counts too
    assert training_hours(folds) == (pytest.approx(2 * 1.0 + 0.5 + 0.5), "GPU")
    cpu = [fold(3, {"machine": {"gpu": None}, "wall_seconds": 900.0, "commands": [["nnUNetv2_train"]]})]
    assert training_hours(cpu) == (pytest.approx(0.25), "CPU")
    assert math.isnan(training_hours(cpu + [fold(4, {"machine": {"gpu": None}})])[0])  # one run not measured here
