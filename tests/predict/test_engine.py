"""``nnunet25d predict`` on ONNX Runtime (the default on CPU) against its PyTorch engine, and the graphs it caches
beside each checkpoint: made once, remade when the checkpoint changes, never used for another, and a damaged or
unwritable cache costs one line, not the prediction.

The model is version 0.1's trained fixture (tests/fixtures/legacy_model_v0_1): a real nnUNetv2_train output."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_25d import TRAINER_FOLDER

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_model_v0_1"
TRAINER = "nnUNetTrainer25D_2epochs_5iters"
PROBABILITY_TOLERANCE = 0.01  # softmax of logits within nnU-Net 2d's own float16 error (0.05 logit)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    shutil.copytree(FIXTURE / "Dataset969_Synthetic25D", results / "Dataset969_Synthetic25D")
    return results


def fold_folder(results: Path) -> Path:
    return results / "Dataset969_Synthetic25D" / f"{TRAINER}__nnUNetPlans__2d" / "fold_0"


def predict(results: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "nnUNet_raw": str(results.parent / "raw"), "nnUNet_preprocessed": str(results.parent / "pre"),
           "nnUNet_results": str(results), "nnUNet_extTrainer": str(TRAINER_FOLDER), "nnUNet_def_n_proc": "1",
           "OMP_NUM_THREADS": "2"}
    result = subprocess.run(["nnunet25d", "predict", "-i", str(FIXTURE / "imagesTs"), "-o", str(out), "-d", "969",
                             "-c", "2d", "-f", "0", "-tr", TRAINER, "-device", "cpu", "--save_probabilities",
                             "-npp", "1", "-nps", "1", "--disable_progress_bar", *extra],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def labels(folder: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "case_005.nii.gz")))


def probabilities(folder: Path) -> np.ndarray:
    return np.load(folder / "case_005.npz")["probabilities"]


def assert_same_prediction(folder: Path, reference: Path) -> None:
    assert np.mean(labels(folder) == labels(reference)) >= 0.9999
    assert np.abs(probabilities(folder) - probabilities(reference)).max() <= PROBABILITY_TOLERANCE
    assert len(np.unique(labels(reference))) > 1


def test_onnxruntime_predicts_what_torch_predicts_and_the_graph_is_made_once(results, tmp_path):
    torch_run = predict(results, tmp_path / "torch", "--backend", "torch")
    assert "ONNX" not in torch_run.stdout and not (fold_folder(results) / "checkpoint_final.onnx").exists()
    predict(results, tmp_path / "ort")
    assert_same_prediction(tmp_path / "ort", tmp_path / "torch")
    graph = fold_folder(results) / "checkpoint_final.onnx"
    made = graph.stat().st_mtime_ns
    predict(results, tmp_path / "ort_again")
    assert graph.stat().st_mtime_ns == made
    assert np.array_equal(probabilities(tmp_path / "ort_again"), probabilities(tmp_path / "ort"))
    assert (tmp_path / "ort" / "plans.json").is_file() and (tmp_path / "ort" / "dataset.json").is_file()


def retrained(checkpoint: Path) -> None:
    """The fold's checkpoint with other weights (as a retrained fold would have)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(3)
    for name, tensor in saved["network_weights"].items():
        if tensor.is_floating_point():
            tensor += 0.2 * torch.randn(tensor.shape, generator=generator) * (tensor.std() if tensor.numel() > 1 else 1)
    torch.save(saved, checkpoint)


def test_a_changed_checkpoint_gets_a_new_graph(results, tmp_path):
    predict(results, tmp_path / "before")
    retrained(fold_folder(results) / "checkpoint_final.pth")
    predict(results, tmp_path / "after")
    predict(results, tmp_path / "after_torch", "--backend", "torch")
    assert_same_prediction(tmp_path / "after", tmp_path / "after_torch")
    assert np.abs(probabilities(tmp_path / "after") - probabilities(tmp_path / "before")).max() > 0.05


@pytest.mark.parametrize("damaged", ["checkpoint_final.onnx", "checkpoint_final.onnx.json"])
def test_a_damaged_cached_graph_costs_one_line_and_is_made_again(results, tmp_path, damaged):
    predict(results, tmp_path / "first")
    (fold_folder(results) / damaged).write_bytes(b"not what it was")
    second = predict(results, tmp_path / "second")
    said = [line for line in second.stdout.splitlines() if "unreadable" in line]
    assert len(said) == 1 and "exporting it again" in said[0]
    assert np.array_equal(labels(tmp_path / "second"), labels(tmp_path / "first"))
    third = predict(results, tmp_path / "third")
    assert "unreadable" not in third.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_model_folder_still_predicts_on_onnxruntime(results, tmp_path):
    folder = fold_folder(results)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = predict(results, tmp_path / "out")
    finally:
        folder.chmod(stat.S_IRWXU)
    assert "cannot be written" in result.stdout and not (folder / "checkpoint_final.onnx").exists()
    assert labels(tmp_path / "out").any()
