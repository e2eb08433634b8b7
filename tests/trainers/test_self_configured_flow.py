"""The self-configured nnUNetTrainer25D through the real commands on a tiny dataset of mixed slice thickness: the
choice it makes is in the training log and the model's plans, and both predictors read it back from there."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from tests.conftest import TINY_SPEC

from nnunet_25d.planning.configuration import SLAB_KEY
from nnunet_25d.datasets.synthetic import write_dataset

pytestmark = pytest.mark.integration
MIXED_ID, MIXED_NAME = 980, "Dataset980_Synthetic25D"
TRAINER = "nnUNetTrainer25D_2epochs_5iters"


@pytest.fixture(scope="module")
def trained_on_mixed_thickness(nnunet) -> str:
    write_dataset(nnunet.raw, MIXED_ID, n_train=6, n_test=1, spec=replace(TINY_SPEC, z_spacings=(2.0, 5.0)), seed=3)
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", str(MIXED_ID), "-c", "2d", "3d_fullres", "-np", "1")
    nnunet.run("nnUNetv2_train", str(MIXED_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu", training=True)
    return MIXED_NAME


def test_the_choice_is_logged_and_saved_with_the_model(nnunet, trained_on_mixed_thickness):
    model = nnunet.model_folder(trained_on_mixed_thickness, TRAINER)
    configuration = json.loads((model / "plans.json").read_text())["configurations"]["2d"]
    full = nnunet.plans(trained_on_mixed_thickness)["configurations"]["3d_fullres"]
    chosen = configuration[SLAB_KEY]["self_configuration"]
    assert chosen["data_configuration"] == configuration[SLAB_KEY]["data_from"] == "3d_fullres"
    assert chosen["thickness_ratio"] == 2.5 and chosen["slice_spacing_mm"] == full["spacing"][0]
    assert configuration["data_identifier"] == full["data_identifier"], "trained on the z-resampled data"
    assert configuration["architecture"]["arch_kwargs"]["slab_size"] == chosen["slab_size"]
    log = next((model / "fold_0").glob("training_log_*.txt")).read_text()
    assert "2.5D self-configuration: data 3d_fullres: mixed slice thickness" in log


def test_both_predictors_read_the_choice_back(nnunet, trained_on_mixed_thickness, tmp_path):
    """``nnUNetv2_predict`` and ``nnunet25d predict`` resample each test case to the chosen spacing and back, and
    predict its slices from the same slabs."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    image = next((nnunet.raw / trained_on_mixed_thickness / "imagesTs").glob("*_0000.nii.gz"))
    shutil.copy(image, inputs)
    outputs = {}
    for command in (["nnUNetv2_predict"], ["nnunet25d", "predict"]):
        out = tmp_path / command[-1]
        nnunet.run(*command, "-i", str(inputs), "-o", str(out), "-d", str(MIXED_ID), "-c", "2d", "-f", "0",
                   "-tr", TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1")
        outputs[command[-1]] = sitk.ReadImage(str(out / image.name.replace("_0000", "")))
    reference = sitk.ReadImage(str(image))
    for segmentation in outputs.values():
        assert segmentation.GetSize() == reference.GetSize()
        assert segmentation.GetSpacing() == pytest.approx(reference.GetSpacing())
    stock, ours = (sitk.GetArrayFromImage(outputs[name]) for name in ("nnUNetv2_predict", "predict"))
    assert np.mean(stock == ours) >= 0.99


def test_missing_resampled_data_names_the_command_the_reason_and_the_fixed_alternative(
        nnunet, trained_on_mixed_thickness, monkeypatch):
    from nnunet_25d.errors import PreprocessedDataMissing
    from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D

    plans = nnunet.plans(trained_on_mixed_thickness)
    plans["configurations"]["3d_fullres"]["data_identifier"] = "nnUNetPlans_3d_fullres_not_preprocessed"
    monkeypatch.setattr(nnunet, "plans", lambda dataset: plans)
    with pytest.raises(PreprocessedDataMissing) as error:
        nnunet.trainer(trained_on_mixed_thickness, nnUNetTrainer25D, "2d", monkeypatch)
    message = str(error.value)
    assert f"nnUNetv2_plan_and_preprocess -d {MIXED_ID} -c 3d_fullres" in message
    assert "mixed slice thickness" in message and "nnUNetTrainer25D_3slices" in message
