"""Progress while nnU-Net commands run: live logs, the command being run, and what a rerun skips."""
from __future__ import annotations

import sys
import threading
import time

import pytest
import torch

from nnunet_25d.benchmark import demo
from nnunet_25d.benchmark.comparison import DatasetPaths, ModelSpec
from nnunet_25d.benchmark.runner import NNUNetRunner


def test_children_run_unbuffered(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    runner = NNUNetRunner(tmp_path)
    assert runner.env()["PYTHONUNBUFFERED"] == "1" and runner.env(training=True)["PYTHONUNBUFFERED"] == "1"


def test_the_log_shows_each_line_while_the_command_runs(tmp_path, monkeypatch):
    """What `tail -f logs/<step>.log` sees: the child's first line long before it exits."""
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    runner = NNUNetRunner(tmp_path)
    child = [sys.executable, "-c", "import time; print('Epoch 0'); time.sleep(6); print('done')"]
    thread = threading.Thread(target=runner.run, args=(child, "live"))
    thread.start()
    try:
        deadline, output = time.monotonic() + 5, []
        while time.monotonic() < deadline and "Epoch 0" not in output:
            time.sleep(0.1)
            log = tmp_path / "live.log"
            output = log.read_text().splitlines()[1:] if log.exists() else []  # after the "$ command" line
        assert output == ["Epoch 0"], output
    finally:
        thread.join()
    assert (tmp_path / "live.log").read_text().endswith("done\n")


def test_the_runner_announces_the_command_and_its_log(tmp_path):
    lines = []
    runner = NNUNetRunner(tmp_path, announce=lines.append)
    runner.run([sys.executable, "-c", "pass"], "quiet")
    assert len(lines) == 1 and lines[0].startswith(f"$ {sys.executable} -c pass")
    assert str(tmp_path / "quiet.log") in lines[0]


class RecordingRunner:
    device = "cpu"

    def __init__(self):
        self.commands = []

    def run(self, args, log_name, training=False, total_epochs=None):
        self.commands.append(args)
        return 0.0


@pytest.fixture
def fold(tmp_path):
    paths = DatasetPaths("Dataset525_Synthetic25D", tmp_path, tmp_path, tmp_path)
    spec = ModelSpec("2.5D", "nnUNetTrainer25D_2epochs_5iters", "2d", 2)
    return paths, spec, paths.model_folder(spec) / "fold_0"


def test_a_rerun_says_skipped_and_runs_nothing_for_finished_trainings(fold, capsys):
    paths, spec, fold_dir = fold
    (fold_dir / "validation").mkdir(parents=True)
    torch.save({}, fold_dir / "checkpoint_final.pth")  # readable: a truncated one stops the demo with its path
    (fold_dir / "validation" / "summary.json").touch()
    runner = RecordingRunner()
    demo.train_all(runner, paths, [spec], 0, time.perf_counter())
    out = capsys.readouterr().out
    assert runner.commands == []
    assert "nnUNetTrainer25D_2epochs_5iters (2d, fold 0): skipped (finished)" in out and "nnUNetv2_train" not in out


def test_an_interrupted_training_says_resuming_and_resumes(fold, capsys):
    paths, spec, fold_dir = fold
    fold_dir.mkdir(parents=True)
    (fold_dir / "checkpoint_latest.pth").touch()
    runner = RecordingRunner()
    demo.train_all(runner, paths, [spec], 0, time.perf_counter())
    assert "resuming with --c" in capsys.readouterr().out
    assert len(runner.commands) == 1 and runner.commands[0][-1] == "--c"


def test_a_new_training_says_training(fold, capsys):
    paths, spec, _ = fold
    runner = RecordingRunner()
    demo.train_all(runner, paths, [spec], 0, time.perf_counter())
    assert "training nnUNetTrainer25D_2epochs_5iters (2d, fold 0)" in capsys.readouterr().out
    assert len(runner.commands) == 1 and "--c" not in runner.commands[0]


def test_demo_preprocesses_the_data_a_trainer_reads():
    resampled = ModelSpec("z-resampled slab", "nnUNetTrainer25DResampled_10epochs_50iters", "2d")
    assert demo.configurations_needed(resampled) == {"2d", "3d_fullres"}
    assert demo.configurations_needed(ModelSpec("2d", "nnUNetTrainer_10epochs_50iters", "2d")) == {"2d"}


def test_the_estimate_counts_only_the_epochs_still_to_train(tmp_path):
    """A fresh run: every epoch of both models; a rerun: none of a finished model, the rest of an interrupted one."""
    import argparse

    args = argparse.Namespace(dataset=None, device="cpu", schedule=(10, 50), workdir=str(tmp_path), fold=0)
    specs = demo.models(10, 50, "nnUNetTrainer25D")
    fresh, basis = demo.demo_estimate(args, specs)
    assert fresh == pytest.approx(demo.DEMO_FIXED_SECONDS + 2 * 10 * 50 * demo.DEMO_SECONDS_PER_ITERATION)
    assert "already trained" not in basis
    results = tmp_path / "nnUNet_results" / "Dataset525_Synthetic25D"
    finished, interrupted = (results / f"{spec.trainer}__nnUNetPlans__2d" / "fold_0" for spec in specs)
    (finished / "validation").mkdir(parents=True)
    torch.save({}, finished / "checkpoint_final.pth")
    (finished / "validation" / "summary.json").touch()
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint_latest.pth").touch()
    (interrupted / "training_log_1.txt").write_text("Epoch 0\nEpoch time: 20 s\nEpoch 1\nEpoch time: 21 s\n")
    (interrupted / "training_log_2.txt").write_text("Epoch 2\nEpoch time: 20 s\nEpoch 3\n")  # killed in epoch 3
    resumed, basis = demo.demo_estimate(args, specs)
    assert resumed == pytest.approx(demo.DEMO_FIXED_SECONDS + 7 * 50 * demo.DEMO_SECONDS_PER_ITERATION)
    assert basis.endswith("13 of 20 epochs already trained")
