"""Bad input through the real command line: a clear error naming the fix, or correct handling."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from tests.conftest import TINY_ID

from nnunet_25d.planning.configuration import training_patch_size
from nnunet_25d.planning.inference_depth import inference_depth
from nnunet_25d.geometry.slab import slab_batch
from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset

pytestmark = pytest.mark.integration


def assert_one_line_error(result, phrase: str) -> None:
    """nnUNetv2_train stopped with exit status 1 and the plugin's message as stderr's last line, no traceback."""
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert phrase in result.stderr.strip().splitlines()[-1]


def test_2d_dataset_is_refused_with_the_fix(nnunet):
    write_dataset(nnunet.raw, 972, name="Flat", n_train=5, n_test=0,
                  spec=SyntheticSpec(shape=(1, 32, 32), objects_per_class=3, radius_range=(2, 3)), seed=0)
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", "972", "-c", "2d", "-np", "1")
    result = nnunet.run("nnUNetv2_train", "972", "2d", "0", "-tr", "nnUNetTrainer25D", "-device", "cpu",
                        check=False, training=True)
    assert result.returncode != 0
    assert "2D dataset" in result.stderr and "nnUNetv2_train 972 2d <FOLD>" in result.stderr
    assert_one_line_error(result, "2D dataset")


def test_plans_without_2d_configuration_are_refused_with_the_fix(nnunet, tiny_dataset):
    plans = nnunet.plans(tiny_dataset)
    del plans["configurations"]["2d"]
    plans["plans_name"] = "nnUNetPlansNo2d"
    (nnunet.preprocessed / tiny_dataset / "nnUNetPlansNo2d.json").write_text(json.dumps(plans))
    result = nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "0", "-tr", "nnUNetTrainer25D", "-p", "nnUNetPlansNo2d",
                        "-device", "cpu", check=False, training=True)
    assert result.returncode != 0
    assert "no configuration '2d'" in result.stderr
    assert f"`nnUNetv2_preprocess -d {TINY_ID} -plans_name nnUNetPlansNo2d -c 2d`" in result.stderr
    assert_one_line_error(result, "no configuration '2d'")


def test_3d_configuration_is_refused_with_the_fix(nnunet, tiny_dataset):
    result = nnunet.run("nnUNetv2_train", str(TINY_ID), "3d_fullres", "0", "-tr", "nnUNetTrainer25D", "-device", "cpu",
                        check=False, training=True)
    assert result.returncode != 0 and "use `2d` as CONFIGURATION" in result.stderr
    assert_one_line_error(result, "use `2d` as CONFIGURATION")


def test_unpreprocessed_configuration_names_the_fix(nnunet, tiny_dataset):
    plans = nnunet.plans(tiny_dataset)
    plans["configurations"]["2d_unprocessed"] = {"inherits_from": "2d", "data_identifier": "nnUNetPlans_missing"}
    plans["plans_name"] = "nnUNetPlansExtra"
    (nnunet.preprocessed / tiny_dataset / "nnUNetPlansExtra.json").write_text(json.dumps(plans))
    result = nnunet.run("nnUNetv2_train", str(TINY_ID), "2d_unprocessed", "0", "-tr", "nnUNetTrainer25D",
                        "-p", "nnUNetPlansExtra", "-device", "cpu", check=False, training=True)
    assert result.returncode != 0 and "no preprocessed data" in result.stderr
    assert f"run `nnUNetv2_preprocess -d {TINY_ID} -plans_name nnUNetPlansExtra -c 2d_unprocessed`" in result.stderr
    assert_one_line_error(result, "no preprocessed data")


def test_volumes_thinner_than_the_slab_train_and_predict(nnunet, tmp_path):
    thin = SyntheticSpec(shape=(2, 32, 32), objects_per_class=3, radius_range=(2, 3), tube_length_range=(2, 2))
    write_dataset(nnunet.raw, 973, name="Thin", n_train=5, n_test=1, spec=thin, seed=0)
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", "973", "-c", "2d", "-np", "1")
    trainer = "nnUNetTrainer25D_5slices_2epochs_5iters"
    nnunet.run("nnUNetv2_train", "973", "2d", "0", "-tr", trainer, "-device", "cpu", training=True)
    plans = json.loads((nnunet.model_folder("Dataset973_Thin", trainer) / "plans.json").read_text())
    configuration = plans["configurations"]["2d"]
    assert configuration["patch_size"][0] == inference_depth(2), "twice the volumes' depth: one padded tile"
    batch = slab_batch(nnunet.plans("Dataset973_Thin")["configurations"]["2d"]["batch_size"], 5, 2)
    assert training_patch_size(configuration)[0] == batch.patch_depth and batch.supervised_slices <= 2
    images = nnunet.raw / "Dataset973_Thin" / "imagesTs"
    nnunet.run("nnUNetv2_predict", "-i", str(images), "-o", str(tmp_path), "-d", "973", "-c", "2d", "-f", "0",
               "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1")
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "case_005.nii.gz")))
    assert predicted.shape == (2, 32, 32) and np.isin(predicted, [0, 1, 2]).all()
