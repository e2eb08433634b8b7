"""Which folds count as done, which resume, which test-set predictions are redone, continued or skipped, and that
find_best leaves the user's files alone."""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
from tests.benchmark.benchmark_tree import (DATASET_JSON, LABELS, ensemble, fake_checkpoint, job, make_test_set, present, write_fold,
                            write_splits, write_test_prediction)

from nnunet_25d.benchmark import find_best
from nnunet_25d.benchmark.find_best import users_files_kept
from nnunet_25d.benchmark.testset import EnsemblePrediction, find_test_set, predict_test_sets
from nnunet_25d.benchmark.runner import NNUNetRunner

VAL = ["c0", "c1", "c2"]


@pytest.fixture
def fold(tmp_path: Path):
    splits = write_splits(tmp_path / "preprocessed" / "Dataset999_Toy", [VAL, ["c3", "c4", "c5"]])
    return job(tmp_path, "nnUNetTrainer", "2d", 0, splits)


def _validated(fold_job, npz: list[str] | None = None) -> None:
    write_fold(fold_job, {case: {"organ": present(0.8)} for case in VAL}, npz)


def _age(path: Path, seconds: float) -> None:
    stamp = path.stat().st_mtime - seconds
    os.utime(path, (stamp, stamp))


def test_a_fully_validated_fold_is_done(fold):
    _validated(fold)
    assert fold.mode == "done" and fold.finished


def test_a_validation_killed_after_one_case_is_not_done(fold):
    _validated(fold, npz=["c0"])  # an older summary.json (validated without --npz), one new .npz
    assert fold.mode == "validate"
    assert fold.train_args("cpu")[-1] == "--val"


def test_a_summary_older_than_a_case_npz_is_stale(fold):
    _validated(fold)
    _age(fold.validation_folder / "summary.json", 60)  # --val --npz rewrote the .npz, then died
    assert fold.mode == "validate"


def test_a_fold_whose_final_checkpoint_cannot_be_read_is_corrupt_not_done(fold):
    _validated(fold)
    final = fold.fold_folder / "checkpoint_final.pth"
    final.write_bytes(final.read_bytes()[:100])  # a copy cut short
    assert fold.mode == "corrupt" and not fold.finished and not fold.started


def test_a_fold_retrained_after_its_validation_is_validated_again(fold):
    """Issue 22 (a): the old model's scores must not stand for a newer checkpoint_final."""
    _validated(fold)
    for path in fold.validation_folder.iterdir():
        _age(path, 120)
    fake_checkpoint(fold.fold_folder / "checkpoint_final.pth")  # nnUNetv2_train again, without --val
    assert fold.mode == "validate" and fold.train_args("cpu")[-1] == "--val"


def test_the_validation_cases_come_from_summary_json_without_splits(tmp_path):
    fold_job = job(tmp_path, "nnUNetTrainer", "2d", 0, splits=None)
    _validated(fold_job, npz=["c0", "c1"])
    assert fold_job.mode == "validate"
    (fold_job.validation_folder / "c2.npz").write_bytes(b"")
    _age(fold_job.validation_folder / "c2.npz", 60)
    assert fold_job.mode == "done"


def test_a_run_that_died_before_its_first_latest_checkpoint_resumes(fold):
    fold.fold_folder.mkdir(parents=True)
    fake_checkpoint(fold.fold_folder / "checkpoint_best.pth")
    # nnU-Net 2.8.1's --c loads checkpoint_final, else checkpoint_latest, else checkpoint_best
    assert fold.mode == "resume" and fold.train_args("cpu")[-1] == "--c"


def test_nnunet_continue_falls_back_to_checkpoint_best():
    import inspect

    from nnunetv2.run.run_training import maybe_load_checkpoint

    source = inspect.getsource(maybe_load_checkpoint)
    assert source.index("checkpoint_latest.pth") < source.index("checkpoint_best.pth")


FOLD_STATES = [
    ("nothing", "train"),
    ("best", "resume"),
    ("latest", "resume"),
    ("final", "validate"),
    ("partial npz", "validate"),
    ("validated", "done"),
]


def _make(fold_job, state: str) -> None:
    fold_job.fold_folder.mkdir(parents=True, exist_ok=True)
    if state in ("best", "latest", "final"):
        fake_checkpoint(fold_job.fold_folder / f"checkpoint_{state}.pth")
    elif state == "partial npz":
        _validated(fold_job, npz=VAL[:1])
    elif state == "validated":
        _validated(fold_job)


@pytest.mark.parametrize("state, mode", FOLD_STATES)
def test_the_task_entry_decides_like_the_benchmark(fold, state, mode, tmp_path, monkeypatch, capsys):
    """`nnunet25d benchmark ... --task 0`, what every launched or emitted task runs, picks the fold's command."""
    from nnunet_25d import cli

    _make(fold, state)
    (tmp_path / "preprocessed" / "Dataset999_Toy" / "dataset.json").write_text(json.dumps({"labels": LABELS}))
    for name in ("raw", "preprocessed", "results"):
        monkeypatch.setenv(f"nnUNet_{name}", str(tmp_path / name))
    monkeypatch.delenv("nnUNet_n_proc_DA", raising=False)  # the task sets it; restored afterwards
    cli.main(["benchmark", "-d", "999", "--variants", "nnUNetTrainer:2d", "--folds", "0", "--task", "0", "--dry-run",
              "-device", "cuda"])  # as every emitted task gets it
    first, decision = capsys.readouterr().out.splitlines()
    assert first.startswith(f"task 0 of 1: nnUNetTrainer 2d fold 0: {mode} ")
    expected = {"train": "--npz", "resume": "--c", "validate": "--val"}
    if mode == "done":
        assert decision == "nothing to run"
    else:
        assert decision == shlex.join([sys.executable, "-m", "nnunet_25d.benchmark.measure", "--record",
                                       str(fold.fold_folder / "benchmark_resources.json"), "--",
                                       *fold.train_args("cuda", mode)])
        assert decision.endswith(expected[mode])


def _fake_find_best(results_folder: Path):
    def run(*args, **kwargs) -> None:
        (results_folder / "inference_information.json").write_text('{"new": true}')
        (results_folder / "inference_instructions.txt").write_text("new")
    return run


def test_find_best_keeps_the_users_inference_information(tmp_path, monkeypatch):
    results = tmp_path / "results"
    dataset = results / "Dataset999_Toy"
    dataset.mkdir(parents=True)
    (dataset / "inference_information.json").write_text('{"users": true}')
    import nnunetv2.evaluation.find_best_configuration as nnunet_find_best
    import nnunetv2.paths

    monkeypatch.setattr(nnunetv2.paths, "nnUNet_results", str(results))
    monkeypatch.setattr(nnunet_find_best, "find_best_configuration", _fake_find_best(dataset))
    out = tmp_path / "report"
    find_best.main(["Dataset999_Toy", "--models", "nnUNetTrainer:2d", "--output", str(out)])
    assert json.loads((dataset / "inference_information.json").read_text()) == {"users": True}
    assert json.loads((out / "inference_information.json").read_text()) == {"new": True}
    assert (dataset / "inference_instructions.txt").read_text() == "new"  # the user had none: nnU-Net's stays
    assert not (out / find_best.BACKUP_FOLDER).exists()


def _left_by_killed_run(out: Path, name: str, text: str) -> None:
    """The backup of the user's ``name`` that a benchmark killed during find_best leaves in its report folder."""
    (out / find_best.BACKUP_FOLDER).mkdir(parents=True, exist_ok=True)
    (out / find_best.BACKUP_FOLDER / name).write_text(text)


def test_a_failed_or_killed_find_best_still_gives_the_users_file_back(tmp_path):
    results, out = tmp_path / "results", tmp_path / "report"
    results.mkdir()
    (results / "inference_information.json").write_text("users")
    with pytest.raises(RuntimeError), users_files_kept(results, out):
        (results / "inference_information.json").write_text("half-written")
        raise RuntimeError("nnU-Net failed")
    assert (results / "inference_information.json").read_text() == "users"
    # killed after nnU-Net's write: the backup is still there; the next run keeps both files
    _left_by_killed_run(out, "inference_information.json", "users")
    (results / "inference_information.json").write_text("from the killed run")
    with users_files_kept(results, out):
        (results / "inference_information.json").write_text("new")
    assert (results / "inference_information.json").read_text() == "from the killed run"
    assert (results / "inference_information.json.before_killed_benchmark").read_text() == "users"
    assert (out / "inference_information.json").read_text() == "new"
    # killed before nnU-Net wrote anything: the backup simply goes back
    (results / "inference_information.json.before_killed_benchmark").unlink()
    _left_by_killed_run(out, "inference_instructions.txt", "users' instructions")
    (results / "inference_instructions.txt").unlink(missing_ok=True)
    with users_files_kept(results, out):
        assert (results / "inference_instructions.txt").read_text() == "users' instructions"
    assert not (out / find_best.BACKUP_FOLDER).exists()


def test_a_killed_run_does_not_restore_its_backup_over_the_users_newer_file(tmp_path, capsys):
    """Issue 22 (b): killed during find_best, then the user ran find_best: the user's new file stays."""
    results, out = tmp_path / "results", tmp_path / "report"
    results.mkdir()
    _left_by_killed_run(out, "inference_information.json", "users, old")
    (results / "inference_information.json").write_text("users, newer")
    with users_files_kept(results, out):
        (results / "inference_information.json").write_text("benchmark's")
    assert (results / "inference_information.json").read_text() == "users, newer"
    assert (results / "inference_information.json.before_killed_benchmark").read_text() == "users, old"
    assert "put the backup beside it" in capsys.readouterr().out


TEST_CASES = ["t0", "t1", "t2"]


@pytest.fixture
def prediction(tmp_path: Path) -> EnsemblePrediction:
    """Folds 0 and 1 of a trained model and the (not yet written) prediction of their ensemble."""
    folds = [job(tmp_path, "nnUNetTrainer", "2d", fold) for fold in (0, 1)]
    for fold_job in folds:
        write_fold(fold_job, {f"c{fold_job.fold}": {"organ": present(0.8)}})
        _age(fold_job.fold_folder / "checkpoint_final.pth", 3600)
    return ensemble(folds, make_test_set(tmp_path, TEST_CASES), tmp_path / "report")


def _predicted(prediction: EnsemblePrediction, cases: list[str] = TEST_CASES) -> None:
    write_test_prediction(prediction, {case: {"organ": present(0.9)} for case in cases})


class RecordingRunner(NNUNetRunner):
    """Records the commands the benchmark would start (the decision is what is tested, not nnU-Net)."""

    def __init__(self, log_dir: Path):
        super().__init__(log_dir)
        self.commands: list[list[str]] = []

    def run(self, args: list[str], log_name: str, training: bool = False, total_epochs: int | None = None) -> float:
        self.commands.append(args)
        return 0.0


def test_a_complete_evaluated_test_prediction_is_skipped(prediction, tmp_path):
    _predicted(prediction)
    assert prediction.mode == "done" and prediction.evaluated
    runner = RecordingRunner(tmp_path / "logs")
    assert predict_test_sets(runner, [prediction], "cpu") == [] and runner.commands == []


def test_a_partial_test_prediction_continues_and_is_then_evaluated(prediction, tmp_path):
    _predicted(prediction, TEST_CASES[:1])  # killed after the first case
    assert prediction.mode == "continue" and not prediction.evaluated
    runner = RecordingRunner(tmp_path / "logs")
    predict_test_sets(runner, [prediction], "cpu")
    predict, evaluate = runner.commands
    assert predict[:4] == ["nnunet25d", "predict", "-i", str(prediction.test_set.images)]
    assert predict[predict.index("-f") + 1:predict.index("-device")] == ["0", "1"]  # the ensemble of the folds
    assert predict[-1] == "--continue_prediction"
    assert evaluate[:3] == ["nnUNetv2_evaluate_folder", str(prediction.test_set.labels), str(prediction.folder)]


def test_a_prediction_older_than_a_retrained_fold_is_redone(prediction):
    _predicted(prediction)
    fake_checkpoint(prediction.model_folder / "fold_1" / "checkpoint_final.pth")  # fold 1 trained again
    _age(prediction.model_folder / "fold_1" / "checkpoint_final.pth", -60)
    assert prediction.mode == "predict" and not prediction.evaluated
    assert "--continue_prediction" not in prediction.predict_args("cpu")


def test_a_prediction_by_other_folds_is_redone(prediction):
    _predicted(prediction)
    (prediction.folder / "benchmark_prediction.json").write_text(json.dumps({"folds": [0]}))
    assert prediction.mode == "predict"
    (prediction.folder / "benchmark_prediction.json").unlink()  # not made by the benchmark: which folds is unknown
    assert prediction.mode == "predict"


def test_a_summary_older_than_a_prediction_is_evaluated_again(prediction, tmp_path):
    _predicted(prediction)
    _age(prediction.summary_file, 60)
    assert prediction.mode == "done" and not prediction.evaluated
    runner = RecordingRunner(tmp_path / "logs")
    predict_test_sets(runner, [prediction], "cpu")
    assert [c[0] for c in runner.commands] == ["nnUNetv2_evaluate_folder"]


def test_the_test_set_needs_the_same_cases_in_images_and_labels(tmp_path):
    raw = tmp_path / "raw" / "Dataset999_Toy"
    dataset_json = {"file_ending": ".nii.gz"}
    assert find_test_set(raw, dataset_json) == (None, "Dataset999_Toy has no imagesTs and labelsTs")
    for folder, names in (("imagesTs", ["a_0000", "a_0001", "b_0000"]), ("labelsTs", ["a"])):
        (raw / folder).mkdir(parents=True)
        for name in names:
            (raw / folder / f"{name}.nii.gz").write_bytes(b"")
    test_set, problem = find_test_set(raw, dataset_json)
    assert test_set is None and problem.startswith("1 test images without labels (e.g. b)")
    (raw / "labelsTs" / "b.nii.gz").write_bytes(b"")
    test_set, _ = find_test_set(raw, dataset_json)
    assert test_set.cases == ("a", "b") and test_set.images == raw / "imagesTs"


def test_the_report_may_not_go_into_nnunets_own_results_folder(tmp_path, monkeypatch, capsys):
    """Issue 22 (c): --output $nnUNet_results/DatasetXXX deleted the user's inference_information.json."""
    from nnunet_25d import cli

    dataset = tmp_path / "results" / "Dataset999_Toy"
    for fold in (0, 1):
        write_fold(job(tmp_path, "nnUNetTrainer", "2d", fold), {"c0": {"organ": present(0.8)}})
    (dataset / "inference_information.json").write_text('{"users": true}')
    (tmp_path / "preprocessed" / "Dataset999_Toy" / "dataset.json").write_text(json.dumps(DATASET_JSON))
    for name in ("raw", "preprocessed", "results"):
        monkeypatch.setenv(f"nnUNet_{name}", str(tmp_path / name))
    with pytest.raises(SystemExit):
        cli.main(["benchmark", "-d", "999", "--variants", "nnUNetTrainer:2d", "--folds", "0", "1", "--collect-only",
                  "-device", "cpu", "--output", str(dataset / ".." / "Dataset999_Toy")])
    assert "is nnU-Net's own results folder of Dataset999_Toy" in capsys.readouterr().err
    assert json.loads((dataset / "inference_information.json").read_text()) == {"users": True}
