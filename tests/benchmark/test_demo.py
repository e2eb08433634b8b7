"""`nnunet25d demo` end to end on its own synthetic dataset, with the shortest schedule."""
import csv
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from tests.conftest import TINY_SPEC

from nnunet_25d.report.load import CONTENTION_SHARE, OTHER_CPU_KEY
from nnunet_25d.datasets.synthetic import write_dataset

pytestmark = pytest.mark.integration


def run_demo(workdir):
    return subprocess.run([sys.executable, "-m", "nnunet_25d.cli", "demo", "--workdir", str(workdir),
                           "--schedule", "2x5"], capture_output=True, text=True, timeout=1200)


def test_demo_reports_both_models_and_skips_finished_training_on_rerun(tmp_path):
    # the demo's own Dataset525 at the tiny size: the demo takes a DatasetXXX it finds instead of writing one
    # (writing it is make-dataset's code, tested in test_synthetic.py); this halves the test's time
    write_dataset(tmp_path / "nnUNet_raw", 525, n_train=5, n_test=2, spec=TINY_SPEC, seed=0)
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    head = first.stdout.splitlines()[:3]  # the pre-flight check, before any nnU-Net command
    assert head[0].startswith(f"machine: {os.cpu_count()} cores (") and head[0].endswith("running on cpu")
    assert any(line.startswith("estimated wall time: ") for line in head), head
    report = tmp_path / "report"
    markdown = (report / "report.md").read_text()
    assert "`nnUNetTrainer_2epochs_5iters`" in markdown and "`nnUNetTrainer25D_2epochs_5iters`" in markdown
    assert markdown in first.stdout
    rows = list(csv.DictReader(open(report / "results.csv")))
    assert {(r["trainer"], r["split"], r["class"]) for r in rows} >= {
        ("nnUNetTrainer25D_2epochs_5iters", "test", "nodule"), ("nnUNetTrainer_2epochs_5iters", "test", "tube")}
    results = json.loads((report / "results.json").read_text())
    assert all(r["seconds_per_epoch"] > 0 and r["seconds_per_case"] > 0 and r["parameters"] > 0 for r in results)
    assert (report / "report.png").stat().st_size > 10_000
    # the report's head: the reading, the classes of dataset.json, the machine, the other work during the runs
    lines = markdown.splitlines()
    assert lines[0] == "## Dataset525_Synthetic25D: nnU-Net 2d vs 2.5D"
    assert "best dice" in lines[2].lower() and "without a significance test" in lines[2]  # one or several winners
    assert "**tube** = label 1, **nodule** = label 2" in markdown
    assert f"{os.cpu_count()} cores" in markdown and f"torch {torch.__version__}" in markdown
    assert all(r["other_cpu"] >= 0 and r["cores"] == os.cpu_count() for r in results)
    flagged = [r["label"] for r in results if r["other_cpu"] > CONTENTION_SHARE * r["cores"]]
    assert ("**⚠ Timings taken while other work ran:**" in markdown) == bool(flagged)
    # what the models segment: PNGs next to the report, each with its one-line reading from the slice counts
    figures = re.findall(r"^!\[.+\]\((segmentation_\S+\.png)\)$", markdown, re.M)
    assert figures and sorted(figures) == sorted(p.name for p in report.glob("segmentation_*.png"))
    for name in figures:
        assert (report / name).stat().st_size > 10_000
        reading = markdown.split(f"]({name})", 1)[1].strip().splitlines()[0]
        assert reading.startswith("**") and re.search(r"(misses \w+ on \d+ of the \d+ slices?|is not in)", reading)
    order = [markdown.index(part) for part in ("![report](report.png)", "### What the models segment",
                                               f"]({figures[0]})", "### Methods")]
    assert order == sorted(order)

    checkpoints = sorted((tmp_path / "nnUNet_results").rglob("checkpoint_final.pth"))
    stamps = [p.stat().st_mtime for p in checkpoints]
    second = run_demo(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [p.stat().st_mtime for p in checkpoints] == stamps, "finished trainings must not be redone"
    # the skipped trainings' other-work record comes from their fold's record
    for result in json.loads((report / "results.json").read_text()):
        fold = tmp_path / "nnUNet_results" / "Dataset525_Synthetic25D" / f"{result['trainer']}__nnUNetPlans__2d" / \
            "fold_0"
        assert result["other_cpu"] >= json.loads((fold / "benchmark_resources.json").read_text())[OTHER_CPU_KEY]
