"""`nnunet25d benchmark` end to end on tiny data: plans, trains two variants x two folds with nnUNetv2_train,
survives being killed, predicts the test set with each variant's fold ensemble, and reports from nnU-Net's own
summary.json files and the surface metrics of the label images."""
import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from tests.conftest import TINY_SPEC
from tests.benchmark.statistics_reference import enumerated_sign_flip_p

from nnunet_25d.benchmark.cases import case_id
from nnunet_25d.datasets.synthetic import write_dataset

DATASET_ID = 975
DATASET = f"Dataset{DATASET_ID}_Synthetic25D"
MATRIX = ["-d", str(DATASET_ID), "--variants", "nnUNetTrainer:2d", "nnUNetTrainer25D", "--folds", "0", "1",
          "--schedule", "2x5", "-device", "cpu"]
TRAINERS = ("nnUNetTrainer_2epochs_5iters", "nnUNetTrainer25D_2epochs_5iters")


def fold_folder(nnunet, trainer: str, fold: int) -> Path:
    return nnunet.model_folder(DATASET, trainer) / f"fold_{fold}"


def finished(folder: Path) -> bool:
    return (folder / "checkpoint_final.pth").exists() and (folder / "validation" / "summary.json").exists()


@pytest.fixture(scope="module")
def benchmark_run(nnunet) -> dict:
    """Start the benchmark on an unplanned dataset, kill it after its first finished run, run it again."""
    write_dataset(nnunet.raw, DATASET_ID, n_train=6, n_test=2, spec=TINY_SPEC, seed=5)
    env = dict(nnunet.env, nnUNet_n_proc_DA="0")  # a CPU user's setting; the benchmark must not plan with it
    first = subprocess.Popen(["nnunet25d", "benchmark", *MATRIX, "--no-find-best"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first_run = fold_folder(nnunet, TRAINERS[0], 0)
    deadline = time.time() + 600
    # finished, and its resources recorded (written after nnU-Net returns, with the machine: slow under load)
    while not (finished(first_run) and (first_run / "benchmark_resources.json").exists()):
        assert first.poll() is None, "the benchmark ended before its first run finished"
        assert time.time() < deadline
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    finished_before = {(t, f): finished(fold_folder(nnunet, t, f)) for t in TRAINERS for f in (0, 1)}
    assert not all(finished_before.values()), "the benchmark finished before it could be killed"
    mtime = (first_run / "checkpoint_final.pth").stat().st_mtime

    second = subprocess.run(["nnunet25d", "benchmark", *MATRIX, "--no-find-best"], env=env, capture_output=True,
                            text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return {"finished_before": finished_before, "mtime": mtime, "stdout": second.stdout}


def test_rerun_after_kill_trains_only_what_is_missing(nnunet, benchmark_run):
    done = sum(benchmark_run["finished_before"].values())
    assert f"{done} of 4 runs finished already; training {4 - done}" in benchmark_run["stdout"]
    # before training: 2 classes x 1 variant x 1 baseline, folds 0 and 1 of six cases validate 2 + 1
    assert "Power (cross-validation): 2 comparisons in the primary family, n ≤ 3 pairs each; smallest attainable " \
           "two-sided p 0.25, Holm-adjusted 0.5 > α = 0.05: this design cannot reach significance" \
           in benchmark_run["stdout"]
    assert "nnUNetTrainer25D configures itself here: slab 3 slices" in benchmark_run["stdout"]
    report = (nnunet.results / DATASET / "nnunet25d_benchmark" / "benchmark.md").read_text()
    assert "**Self-configuration.** nnUNetTrainer25D configures itself here: slab 3 slices" in report
    assert (fold_folder(nnunet, TRAINERS[0], 0) / "checkpoint_final.pth").stat().st_mtime == benchmark_run["mtime"]
    for trainer in TRAINERS:
        for fold in (0, 1):
            folder = fold_folder(nnunet, trainer, fold)
            assert finished(folder)
            resources = json.loads((folder / "benchmark_resources.json").read_text())
            assert resources["peak_host_memory_mib"] > 100


def test_the_test_set_is_predicted_by_each_fold_ensemble_and_scored(nnunet, benchmark_run):
    for trainer in TRAINERS:  # nnUNetv2_predict with both folds, through the benchmark's runner
        assert f"-tr {trainer} -p nnUNetPlans -f 0 1 -device cpu" in benchmark_run["stdout"]
    out = nnunet.results / DATASET / "nnunet25d_benchmark"
    rows = [r for r in csv.DictReader(open(out / "cases.csv")) if r["split"] == "test"]
    assert {(r["variant"], r["fold"], r["case"], r["class"]) for r in rows} == {
        (v, "-1", c, n) for v in ("nnUNetTrainer:2d", "nnUNetTrainer25D:2d") for c in ("case_006", "case_007")
        for n in ("tube", "nodule")}
    for row in rows:
        labels = sitk.ReadImage(str(nnunet.raw / DATASET / "labelsTs" / f"{row['case']}.nii.gz"))
        diagonal = float(np.linalg.norm(np.multiply(labels.GetSize(), labels.GetSpacing())))
        n_ref, n_pred, hd95, nsd = int(row["n_ref"]), int(row["n_pred"]), float(row["hd95"]), float(row["nsd"])
        assert n_ref > 0  # every synthetic case has tubes and nodules
        assert float(row["nsd_tolerance_mm"]) == 1.0  # the default
        if n_pred == 0:  # missed entirely: the worst distance, no surface within tolerance
            assert (hd95, nsd) == (pytest.approx(diagonal, rel=1e-6), 0.0)
        else:
            assert 0 <= hd95 < diagonal and 0 <= nsd <= 1
    comparisons = [r for r in csv.DictReader(open(out / "comparisons.csv")) if r["split"] == "test"]
    assert {(r["metric"], r["class"], r["n_pairs"]) for r in comparisons} == {
        (m, n, "2") for m in ("dice", "hd95", "nsd") for n in ("tube", "nodule")}


def _summary(nnunet, trainer: str, fold: int) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """nnU-Net's mean Dice per class, and per case the score the documented rule pairs: nnU-Net's Dice (0 where
    exactly one of reference and prediction is empty), NaN where both are empty."""
    summary = json.loads((fold_folder(nnunet, trainer, fold) / "validation" / "summary.json").read_text())
    names = {"1": "tube", "2": "nodule"}
    means = {names[k]: v["Dice"] for k, v in summary["mean"].items()}
    per_case = {}
    for key, name in names.items():
        per_case[name] = {}
        for case in summary["metric_per_case"]:
            metrics = case["metrics"][key]
            empty = metrics["n_ref"] == 0 and metrics["n_pred"] == 0
            per_case[name][case_id(case["reference_file"])] = float("nan") if empty else metrics["Dice"]
    return means, per_case


def test_collect_only_reports_nnunet_summaries_with_paired_tests(nnunet, benchmark_run):
    result = nnunet.run("nnunet25d", "benchmark", *MATRIX, "--collect-only", timeout=600)
    out = nnunet.results / DATASET / "nnunet25d_benchmark"
    assert "find_best_configuration" in result.stdout
    rows = list(csv.DictReader(open(out / "benchmark.csv")))
    cv, test = ([r for r in rows if r["split"] == split] for split in ("cv", "test"))
    assert len(cv) == 2 * 2 * 2 and len(test) == 2 * 2  # variants x folds x classes; variants x classes
    for row in cv:
        means, _ = _summary(nnunet, row["trainer"], int(row["fold"]))
        assert float(row["dice"]) == pytest.approx(means[row["class"]], abs=1e-4)
    for row in test:  # nnUNetv2_evaluate_folder's mean over the test cases
        summary = out / "test_predictions" / f"{row['trainer']}__nnUNetPlans__2d" / "summary.json"
        means = {{"1": "tube", "2": "nodule"}[k]: v["Dice"] for k, v in json.loads(summary.read_text())["mean"].items()}
        assert float(row["dice"]) == pytest.approx(means[row["class"]], abs=1e-4)
    # the 2.5D model against nnU-Net 2d: sign-flip p over both folds' cases; both-empty pairs out, one-empty = 0
    comparisons = list(csv.DictReader(open(out / "comparisons.csv")))
    for name in ("tube", "nodule"):
        per_case = [{}, {}]
        for index, trainer in enumerate(TRAINERS):
            for fold in (0, 1):
                per_case[index].update(_summary(nnunet, trainer, fold)[1][name])
        cases = sorted(c for c in per_case[0] if not (np.isnan(per_case[0][c]) and np.isnan(per_case[1][c])))
        variant, baseline = ([1.0 if np.isnan(per_case[i][c]) else per_case[i][c] for c in cases] for i in (1, 0))
        differences = np.subtract(variant, baseline)
        row = next(r for r in comparisons if r["variant"] == "nnUNetTrainer25D:2d" and r["split"] == "cv"
                   and r["metric"] == "dice" and r["baseline"] == "nnUNetTrainer:2d" and r["class"] == name)
        assert int(row["n_pairs"]) == len(cases)
        if differences.any():
            assert float(row["permutation_p"]) == pytest.approx(enumerated_sign_flip_p(differences), rel=1e-3)
        assert float(row["mean_difference"]) == pytest.approx(differences.mean(), abs=1e-4)
    markdown = (out / "benchmark.md").read_text()
    assert "nnUNetTrainer 2d (baseline)" in markdown and "nnUNetv2_find_best_configuration" in markdown
    information = json.loads((nnunet.results / DATASET / "inference_information.json").read_text())
    assert information["folds"] == [0, 1]
    assert {m["trainer"] for m in information["considered_models"]} == set(TRAINERS)
    for picture in ("dice_per_case.png", "benchmark.png"):
        assert (out / picture).stat().st_size > 10_000


def test_collect_only_names_the_missing_runs(nnunet, benchmark_run):
    result = nnunet.run("nnunet25d", "benchmark", *MATRIX[:4], "nnUNetTrainer25D_5slices", *MATRIX[5:],
                        "--collect-only", "--no-find-best", "--output", str(nnunet.root / "partial"))
    report = (nnunet.root / "partial" / "benchmark.md").read_text()
    assert "### Not run yet" in report and "### Failed runs" not in report
    assert "nnUNetTrainer25D_5slices 2d fold 0: not started: run the benchmark without --collect-only" in report
    assert result.returncode == 0


def test_seeds_train_each_model_again_and_report_their_spread(nnunet, benchmark_run):
    """``--seeds 2`` on the finished matrix: only the seeded repeats train; both repeats' cases are scored, paired as
    per-case means, with the spread between repeats and an interval clustered by fold and seed."""
    out = nnunet.root / "seeds"
    result = nnunet.run("nnunet25d", "benchmark", *MATRIX, "--seeds", "2", "--output", str(out), timeout=1200)
    assert "4 of 8 runs finished already; training 4" in result.stdout
    for trainer in TRAINERS:
        for fold in (0, 1):
            folder = fold_folder(nnunet, f"{trainer}_seed1", fold)
            assert finished(folder)
            assert "seed 1 (torch, NumPy, random)" in next(folder.glob("training_log_*.txt")).read_text()
    rows = list(csv.DictReader(open(out / "cases.csv")))
    assert {(r["variant"], r["split"], r["seed"]) for r in rows} == {
        (f"{t}:2d", split, seed) for t in ("nnUNetTrainer", "nnUNetTrainer25D") for split in ("cv", "test")
        for seed in ("0", "1")}
    report = (out / "benchmark.md").read_text()
    assert report.startswith(f"## {DATASET}: benchmark, 2 of nnU-Net's five folds (0,1), 2 epochs x 5 iterations, "
                             "2 seeds")
    assert "### Spread between seeded repeats: Dice, CV over folds 0,1" in report
    assert "Counted per case and seeded repeat: each case counts 2 times, once per training." in report
    assert "training (device-hours)" in report and " CPU-h |" in report  # both repeats' measured runs
    # find_best's recommendation, run on the test set as nnU-Net prints it: ensemble (if two), postprocessing
    information = json.loads((out / "inference_information.json").read_text())
    members = information["best_model_or_ensemble"]["selected_model_or_models"]
    assert "The recommendation on the test set, run as nnU-Net prints it" in report
    summary = json.loads((out / "recommended" / "postprocessed" / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == 2
    assert (out / "recommended" / "ensemble").is_dir() == (len(members) > 1)
    comparisons = [r for r in csv.DictReader(open(out / "comparisons.csv")) if r["metric"] == "dice"]
    assert {r["split"] for r in comparisons if r["ci95_clustered_low"] != "nan"} == {"cv", "test"}
