"""Naming a model: an unknown dataset or a misspelled trainer is one line with the fix, in every command that takes
a model (``predict``, ``export``), never a traceback and never "train <misspelled name> first"."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_25d import TRAINER_FOLDER

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_model_v0_1"


@pytest.fixture
def results(tmp_path) -> Path:
    """nnU-Net folders whose results hold one trained model (Dataset969, nnUNetTrainer25D_2epochs_5iters, 2d)."""
    shutil.copytree(FIXTURE / "Dataset969_Synthetic25D", tmp_path / "results" / "Dataset969_Synthetic25D")
    return tmp_path / "results"


def nnunet25d(results: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "nnUNet_raw": str(results.parent / "raw"), "nnUNet_preprocessed": str(results.parent / "pre"),
           "nnUNet_results": str(results), "nnUNet_extTrainer": str(TRAINER_FOLDER)}
    return subprocess.run([sys.executable, "-m", "nnunet_25d.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    return line


@pytest.mark.parametrize("command", [
    ["predict", "-i", "in", "-o", "out", "-c", "2d", "-tr", "nnUNetTrainer25D", "-device", "cpu"],
    ["export", "-c", "2d", "-tr", "nnUNetTrainer25D", "-o", "out"],
])
def test_an_unknown_dataset_id_is_one_line_naming_the_datasets_there(results, command):
    line = one_error_line(nnunet25d(results, *command, "-d", "999"))
    assert "no dataset '999' in" in line and "datasets there: Dataset969_Synthetic25D" in line


@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_misspelled_trainer_gets_the_close_names_not_train_it_first(results, tmp_path, command):
    args = ["-i", str(FIXTURE / "imagesTs"), "-device", "cpu"] if command == "predict" else []
    line = one_error_line(nnunet25d(results, command, "-d", "969", "-c", "2d", "-tr", "nnUNetTrainer25D_2epoch_5iters",
                                    "-o", str(tmp_path / "out"), *args))
    assert "write _2epochs, not _2epoch" in line
    assert "closest trained: nnUNetTrainer25D_2epochs_5iters__nnUNetPlans__2d" in line
    assert "train it first" not in line


def test_a_valid_but_untrained_trainer_is_told_to_train_and_shown_what_is_trained(results, tmp_path):
    line = one_error_line(nnunet25d(results, "predict", "-i", "in", "-o", str(tmp_path / "out"), "-d", "969",
                                    "-c", "2d", "-tr", "nnUNetTrainer25DFusion", "-device", "cpu"))
    assert "train it first (`nnUNetv2_train 969 2d FOLD -tr nnUNetTrainer25DFusion -p nnUNetPlans`)" in line
    assert "nnUNetTrainer25D_2epochs_5iters__nnUNetPlans__2d" in line


def test_an_unknown_trainer_name_says_neither_knows_it(results, tmp_path):
    line = one_error_line(nnunet25d(results, "predict", "-i", "in", "-o", str(tmp_path / "out"), "-d", "969",
                                    "-c", "2d", "-tr", "MyOwnTrainer", "-device", "cpu"))
    assert "trainer 'MyOwnTrainer' is known neither to nnU-Net nor to the plugin" in line


def test_a_checkpoint_with_a_pickle_payload_is_refused_and_nothing_of_it_runs(results, tmp_path):
    """nnU-Net's own loader (torch.load, weights_only=False) would run the payload: the model folder is checked
    with the plain-data loader first."""
    import torch

    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    fold = results / "Dataset969_Synthetic25D" / "nnUNetTrainer25D_2epochs_5iters__nnUNetPlans__2d" / "fold_0"
    checkpoint = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    checkpoint["logging"] = Payload()
    torch.save(checkpoint, fold / "checkpoint_final.pth")
    line = one_error_line(nnunet25d(results, "predict", "-i", str(FIXTURE / "imagesTs"), "-o", str(tmp_path / "out"),
                                    "-d", "969", "-c", "2d", "-tr", "nnUNetTrainer25D_2epochs_5iters", "-f", "0",
                                    "-device", "cpu"))
    assert f"checkpoint {fold / 'checkpoint_final.pth'} holds more than weights" in line and "refused" in line
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_checkpoint_corrupted_inside_is_one_line_naming_it(results, tmp_path):
    """The zip directory intact, a tensor's data damaged: torch's "PytorchStreamReader failed" becomes one line."""
    import zipfile

    fold = results / "Dataset969_Synthetic25D" / "nnUNetTrainer25D_2epochs_5iters__nnUNetPlans__2d" / "fold_0"
    path = fold / "checkpoint_final.pth"
    with zipfile.ZipFile(path) as archive:
        largest = max(archive.infolist(), key=lambda info: info.compress_size)
    data = bytearray(path.read_bytes())
    start = largest.header_offset + 30 + len(largest.filename.encode()) + len(largest.extra)
    data[start:start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    line = one_error_line(nnunet25d(results, "predict", "-i", str(FIXTURE / "imagesTs"), "-o", str(tmp_path / "out"),
                                    "-d", "969", "-c", "2d", "-tr", "nnUNetTrainer25D_2epochs_5iters", "-f", "0",
                                    "-device", "cpu"))
    assert f"checkpoint {path} is truncated or corrupted" in line
