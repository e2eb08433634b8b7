"""What the benchmark says about runs that have not finished, through the real ``nnunet25d benchmark`` command on
hand-built nnU-Net trees: a truncated checkpoint, a failed run, a run never started, nothing preprocessed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.benchmark.benchmark_tree import DATASET_JSON, job, present, toy_nnunet_folders, write_fold

from nnunet_25d.benchmark.training import unfinished_runs

CASES = {"c0": {"organ": present(0.9), "lesion": present(0.5)}, "c1": {"organ": present(0.8), "lesion": present(0.4)}}


pytestmark = pytest.mark.integration  # the real `nnunet25d benchmark` in a subprocess (~10 s each)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    return toy_nnunet_folders(tmp_path)


def benchmark(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnunet_25d.cli", "benchmark", "-d", "999", "--variants",
                           "nnUNetTrainer:2d", "--folds", "0", "1", "--no-find-best", "-device", "cpu", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_finalize_with_a_truncated_checkpoint_reports_it_without_a_traceback(folders, tmp_path):
    for fold in (0, 1):
        write_fold(job(tmp_path, "nnUNetTrainer", "2d", fold), CASES)
    (tmp_path / "preprocessed" / "Dataset999_Toy" / "dataset.json").write_text(json.dumps(DATASET_JSON))
    truncated = job(tmp_path, "nnUNetTrainer", "2d", 1).fold_folder / "checkpoint_final.pth"
    truncated.write_bytes(truncated.read_bytes()[:200])
    result = benchmark(folders, "--finalize", "--output", str(tmp_path / "report"))
    assert result.returncode == 0 and "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    report = (tmp_path / "report" / "benchmark.md").read_text()
    assert "### Failed runs" in report, "--finalize reports a failed fold (exit 0, as after the tasks of a launch)"
    assert f"nnUNetTrainer 2d fold 1: checkpoint {truncated} is truncated or corrupted" in report
    assert "delete it and run the benchmark again" in report
    assert "| nnUNetTrainer 2d (baseline) | `nnUNetTrainer` | 2d | 0 | 2 |" in report, "fold 0 scored, n = 2 cases"


def test_collect_only_with_nothing_preprocessed_says_what_to_run(folders, tmp_path):
    result = benchmark(folders, "--collect-only")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "none of the 2 runs of this matrix has finished; nothing is preprocessed" in lines[0]
    assert "without --collect-only to plan, preprocess and train them" in lines[0]


def test_a_run_that_never_started_is_not_a_failure(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    jobs = [job(tmp_path, "nnUNetTrainer", "2d", fold) for fold in range(4)]
    write_fold(jobs[0], CASES)
    (logs / f"{jobs[1].name}.log").write_text("$ nnUNetv2_train ...\nRuntimeError: CUDA out of memory\n\n")
    jobs[2].fold_folder.mkdir(parents=True)
    torch.save({}, jobs[2].fold_folder / "checkpoint_latest.pth")  # readable: an empty file is a corrupt one
    failed, not_run = unfinished_runs(jobs, logs)
    assert failed == [f"nnUNetTrainer 2d fold 1: did not finish: RuntimeError: CUDA out of memory "
                      f"(log: {logs / (jobs[1].name + '.log')})"]
    assert not_run == ["nnUNetTrainer 2d fold 2: interrupted (a checkpoint, no final one): the benchmark resumes it "
                       "with --c",
                       "nnUNetTrainer 2d fold 3: not started: run the benchmark without --collect-only/--finalize "
                       "to train it"]
