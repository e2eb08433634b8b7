"""The benchmark runs no code from a checkpoint: a fold is scored from its checkpoint loaded as plain data, and a
fold is handed to nnU-Net's ``--c`` / ``--val`` (whose loader unpickles everything) only after its checkpoint
loaded so. A checkpoint that cannot be read, the one ``--c`` would resume from included, is one line naming it."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.benchmark.benchmark_tree import fake_checkpoint, gt_folder, job, present, write_fold, write_splits

from nnunet_25d.benchmark.collect import Scoring
from nnunet_25d.benchmark.command import summarise
from nnunet_25d.benchmark.runner import NNUNetRunner
from nnunet_25d.benchmark.training import train_missing, unfinished_runs, with_training_failures
from nnunet_25d.inference.checkpoint_file import UnsafeCheckpointError

CASES = {"c0": {"organ": present(0.9)}, "c1": {"organ": present(0.8)}}


class Payload:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return exec, (f"open({str(self.target)!r}, 'w').close()",)


def malicious_checkpoint(path: Path, target: Path) -> None:
    torch.save({"logging": {}, "network_weights": {"w": torch.zeros(1)}, "x": Payload(target)}, path)


class NothingRuns(NNUNetRunner):
    def run(self, args, log_name, training=False, total_epochs=None):
        raise AssertionError(f"nnU-Net was started: {args}")


def test_scoring_a_fold_does_not_run_its_checkpoint(tmp_path):
    folds = [job(tmp_path, "nnUNetTrainer", "2d", fold) for fold in (0, 1)]
    for fold_job in folds:
        write_fold(fold_job, CASES)
    target = tmp_path / "payload_ran"
    malicious_checkpoint(folds[1].fold_folder / "checkpoint_final.pth", target)
    refused: list[str] = []
    summaries, _ = summarise(folds, [folds[0].variant], ["nnUNetTrainer:2d"], tmp_path / "report",
                             Scoring(gt_folder(folds[0])), refused=refused)
    assert not target.exists(), "the pickle payload ran"
    assert [s.fold_ids for s in summaries] == [[0]], "fold 1 is left out, fold 0 scored"
    assert len(refused) == 1 and "\n" not in refused[0]
    assert refused[0].startswith("nnUNetTrainer 2d fold 1: checkpoint ")
    assert str(folds[1].fold_folder / "checkpoint_final.pth") in refused[0] and "refused" in refused[0]
    with pytest.raises(UnsafeCheckpointError):  # without a list to report into: the one-line error
        summarise(folds, [folds[0].variant], ["nnUNetTrainer:2d"], tmp_path / "report", Scoring(gt_folder(folds[0])))
    assert not target.exists()


def test_a_checkpoint_to_resume_with_a_payload_is_not_handed_to_nnunet(tmp_path):
    fold_job = job(tmp_path, "nnUNetTrainer", "2d", 0)
    fold_job.fold_folder.mkdir(parents=True)
    target = tmp_path / "payload_ran"
    malicious_checkpoint(fold_job.fold_folder / "checkpoint_latest.pth", target)
    assert fold_job.mode == "resume"
    failures = train_missing(NothingRuns(tmp_path / "logs"), [fold_job], "cpu")
    assert not target.exists()
    assert len(failures) == 1 and "\n" not in failures[0]
    assert failures[0].startswith(f"nnUNetTrainer 2d fold 0: checkpoint {fold_job.fold_folder / 'checkpoint_latest.pth'}")
    failed, not_run = with_training_failures(*unfinished_runs([fold_job], tmp_path / "logs"), failures)
    assert failed == failures and not_run == [], "reported as refused, not as 'interrupted: resumes with --c'"


@pytest.mark.parametrize("with_best", [False, True])
def test_a_truncated_latest_checkpoint_is_not_resumed_and_names_the_file_and_the_fix(tmp_path, with_best):
    splits = write_splits(tmp_path / "preprocessed" / "Dataset999_Toy", [["c0"], ["c1"]])
    fold_job = job(tmp_path, "nnUNetTrainer", "2d", 0, splits)
    fold_job.fold_folder.mkdir(parents=True)
    latest = fold_job.fold_folder / "checkpoint_latest.pth"
    fake_checkpoint(latest)
    latest.write_bytes(latest.read_bytes()[:300])  # the disk filled up while nnU-Net saved it
    if with_best:
        fake_checkpoint(fold_job.fold_folder / "checkpoint_best.pth")
    assert fold_job.mode == "corrupt" and not fold_job.started
    failures = train_missing(NothingRuns(tmp_path / "logs"), [fold_job], "cpu")
    fix = "it resumes the fold from checkpoint_best.pth" if with_best else "it trains the fold from the start"
    assert failures == [f"nnUNetTrainer 2d fold 0: checkpoint {latest} is truncated or corrupted (not a readable "
                        f"torch file): delete it and run the benchmark again: {fix}"]
    assert unfinished_runs([fold_job], tmp_path / "logs") == (failures, [])


def test_a_checkpoint_corrupted_inside_is_one_line_before_nnunet_runs(tmp_path):
    """Zip directory intact (the mode says resume), data not: refused before ``--c`` with the file's name."""
    import zipfile

    fold_job = job(tmp_path, "nnUNetTrainer", "2d", 0)
    fold_job.fold_folder.mkdir(parents=True)
    latest = fold_job.fold_folder / "checkpoint_latest.pth"
    fake_checkpoint(latest)
    info = next(i for i in zipfile.ZipFile(latest).infolist() if i.filename.endswith("/data/0"))
    with open(latest, "r+b") as file:
        file.seek(info.header_offset)
        file.write(b"\xff" * 16)
    assert fold_job.mode == "resume"
    failures = train_missing(NothingRuns(tmp_path / "logs"), [fold_job], "cpu")
    assert len(failures) == 1 and f"checkpoint {latest} is truncated or corrupted" in failures[0]
