"""A model folder trained by version 0.1 (before the package layout changed) predicts as it did then, through
``nnunet25d predict`` and stock ``nnUNetv2_predict``: its plans' dotted network paths still resolve, its trainer
name is still found."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_25d import TRAINER_FOLDER

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_model_v0_1"
TRAINER = "nnUNetTrainer25D_2epochs_5iters"


@pytest.mark.integration
@pytest.mark.parametrize("command, expected", [("nnunet25d predict --backend torch", "plugin"),
                                               ("nnUNetv2_predict", "stock")])
def test_a_model_folder_of_version_0_1_predicts_identically(tmp_path, command, expected):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE / "Dataset969_Synthetic25D", results / "Dataset969_Synthetic25D")
    env = {**os.environ, "nnUNet_raw": str(tmp_path / "raw"), "nnUNet_preprocessed": str(tmp_path / "pre"),
           "nnUNet_results": str(results), "nnUNet_extTrainer": str(TRAINER_FOLDER), "nnUNet_def_n_proc": "1",
           "OMP_NUM_THREADS": "2"}
    out = tmp_path / "out"
    result = subprocess.run([*command.split(), "-i", str(FIXTURE / "imagesTs"), "-o", str(out), "-d", "969",
                             "-c", "2d", "-f", "0", "-tr", TRAINER, "-device", "cpu", "--save_probabilities",
                             "-npp", "1", "-nps", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = np.load(FIXTURE / "expected" / f"case_005_{expected}.npz")["probabilities"]
    assert np.array_equal(np.load(out / "case_005.npz")["probabilities"], reference)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case_005.nii.gz")))
    reference_labels = sitk.GetArrayFromImage(sitk.ReadImage(str(FIXTURE / "expected" / f"case_005_{expected}.nii.gz")))
    assert np.array_equal(labels, reference_labels) and len(np.unique(reference_labels)) > 1
