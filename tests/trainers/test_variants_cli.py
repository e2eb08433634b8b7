"""nnUNetTrainer25DFusion and nnUNetTrainer25DAniso through the real command line on tiny data."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from tests.conftest import TINY_ID

pytestmark = pytest.mark.integration


def read_label(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def with_3d_fullres(nnunet, tiny_dataset) -> str:
    nnunet.run("nnUNetv2_preprocess", "-d", str(TINY_ID), "-c", "3d_fullres", "-np", "1")
    return tiny_dataset


@pytest.mark.parametrize("trainer, configuration, network", [
    ("nnUNetTrainer25DFusion_5slices_2epochs_5iters", "2d", "DepthReductionNetwork"),
    ("nnUNetTrainer25DResampled_2epochs_5iters", "2d", "SlabNetwork"),
    ("nnUNetTrainer25DAniso_2epochs_5iters", "2d", "AnisoUNet"),
    ("nnUNetTrainer25DAniso_HardnessDice_2epochs_5iters", "3d_fullres", "AnisoUNet"),
])
def test_train_validate_predict(nnunet, with_3d_fullres, tmp_path, trainer, configuration, network):
    nnunet.run("nnUNetv2_train", str(TINY_ID), configuration, "0", "-tr", trainer, "-device", "cpu", "--npz",
               training=True)
    model = nnunet.model_folder(with_3d_fullres, trainer, configuration)
    plans = json.loads((model / "plans.json").read_text())
    assert plans["configurations"][configuration]["architecture"]["network_class_name"].endswith(network)
    assert len(plans["configurations"][configuration]["patch_size"]) == 3

    validation = model / "fold_0" / "validation"
    case = sorted(validation.glob("*.nii.gz"))[0].name.replace(".nii.gz", "")
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(nnunet.raw / with_3d_fullres / "imagesTr" / f"{case}_0000.nii.gz", inputs)
    nnunet.run("nnunet25d", "predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-d", str(TINY_ID),
               "-c", configuration, "-f", "0", "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1")
    assert np.array_equal(read_label(tmp_path / "out" / f"{case}.nii.gz"), read_label(validation / f"{case}.nii.gz"))


def test_hardness_trainer_trains_with_the_hardness_loss(nnunet, with_3d_fullres, monkeypatch):
    from nnunet_25d.losses.hardness_attention import HardnessWeightedDiceLoss
    from nnunet_25d.trainers.aniso_trainer import (nnUNetTrainer25DAniso_HardnessDice,
                                                   nnUNetTrainer25DAniso_HardnessDiceDetached)

    nnunet.set_environ(monkeypatch)
    plans = nnunet.plans(with_3d_fullres)
    plans["continue_training"] = False
    dataset_json = json.loads((nnunet.preprocessed / with_3d_fullres / "dataset.json").read_text())
    trainer = nnUNetTrainer25DAniso_HardnessDice(plans, "3d_fullres", 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    assert isinstance(trainer.loss.loss.dc, HardnessWeightedDiceLoss)
    assert trainer.loss.loss.dc.weight_gradient, "VS_Seg's: the gradient flows through the weights"
    detached = nnUNetTrainer25DAniso_HardnessDiceDetached(plans, "3d_fullres", 0, dataset_json, torch.device("cpu"))
    detached.initialize()
    assert detached.loss.loss.dc.weight_gradient is False


def test_resampled_slab_trainer_reads_the_3d_fullres_data(nnunet, tiny_dataset):
    from nnunet_25d.planning.configuration import ConfigurationError
    from nnunet_25d.trainers.registry import TRAINERS

    plans = nnunet.plans(tiny_dataset)
    derived = TRAINERS["nnUNetTrainer25DResampled"].derive_plans(plans, "2d")["configurations"]["2d"]
    full = plans["configurations"]["3d_fullres"]
    assert derived["data_identifier"] == full["data_identifier"] and derived["spacing"] == full["spacing"]
    assert derived["patch_size"][1:] == plans["configurations"]["2d"]["patch_size"], "the 2d network's patch"
    assert derived["resampling_fn_probabilities"] == full["resampling_fn_probabilities"]
    del plans["configurations"]["3d_fullres"]
    with pytest.raises(ConfigurationError, match="no configuration '3d_fullres'"):
        TRAINERS["nnUNetTrainer25DResampled"].derive_plans(plans, "2d")
