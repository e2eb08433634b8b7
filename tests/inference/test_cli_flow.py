"""The real nnU-Net command line, end to end, with nnUNetTrainer25D."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from tests.conftest import TINY_ID, TINY_TRAINER

from nnunet_25d.trainers.registry import TRAINERS
from nnunet_25d.trainers.slab_trainer import training_setup

pytestmark = pytest.mark.integration
BASELINE_TRAINER = "nnUNetTrainer_10epochs_25iters"
TUBE_TOLERANCE = 0.02  # Dice on 2 validation cases of a 250-step run: seed noise, not a margin to lose by


def read_label(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def nodule_dice_bound_without_context(summary: dict) -> float:
    """The best mean nodule Dice a per-slice model can reach: within a slice tubes and nodules are the same disc,
    so at best it calls every disc a nodule (Dice 2N / (2N + T) per case, N nodule and T tube voxels)."""
    bounds = []
    for case in summary["metric_per_case"]:
        label = read_label(Path(case["reference_file"]))
        nodule, tube = int((label == 2).sum()), int((label == 1).sum())
        bounds.append(2 * nodule / (2 * nodule + tube))
    return float(np.mean(bounds))


def test_slab_model_finds_nodules_that_only_context_tells_apart(trained_slab_model, trained_baseline):
    summary = json.loads((trained_slab_model / "fold_0" / "validation" / "summary.json").read_text())
    baseline = json.loads((trained_baseline / "fold_0" / "validation" / "summary.json").read_text())
    bound = nodule_dice_bound_without_context(summary)
    slab, flat = summary["mean"]["2"]["Dice"], baseline["mean"]["2"]["Dice"]
    assert flat <= bound + 0.02, f"nnU-Net 2d nodule Dice {flat:.3f} above the per-slice bound {bound:.3f}?"
    assert slab >= bound + 0.2, f"slab nodule Dice {slab:.3f}: not clearly above what no context allows ({bound:.3f})"
    assert summary["mean"]["1"]["Dice"] > 0.7, "and it still segments the tubes"
    assert summary["mean"]["1"]["Dice"] >= baseline["mean"]["1"]["Dice"] - TUBE_TOLERANCE, \
        "a slab sees what 2d sees and more: on the tubes it must not fall below nnU-Net 2d"


def test_model_folder_plans_are_what_training_used(nnunet, tiny_dataset, trained_slab_model, monkeypatch):
    nnunet.set_environ(monkeypatch)  # the self-configuration reads nnU-Net's fingerprint from nnUNet_preprocessed
    saved = json.loads((trained_slab_model / "plans.json").read_text())
    plans = nnunet.plans(tiny_dataset)
    expected = TRAINERS[TINY_TRAINER].derive_plans(plans, "2d", training_setup(plans, "2d", 0))
    assert saved["configurations"]["2d"] == expected["configurations"]["2d"]
    chosen = saved["configurations"]["2d"]["nnunet_25d"]
    assert (chosen["self_configuration"]["slab_size"], chosen["self_configuration"]["data_configuration"]) == (3, None)
    assert chosen["supervised_slices"] == 1, "per-slice batches"
    checkpoint = torch.load(trained_slab_model / "fold_0" / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
    assert checkpoint["init_args"]["plans"]["configurations"]["2d"] == saved["configurations"]["2d"]
    assert checkpoint["inference_allowed_mirroring_axes"] == (1, 2)
    first_conv = next(v for k, v in checkpoint["network_weights"].items() if k.endswith("weight") and v.ndim == 4)
    assert first_conv.shape[1] == 3, "the trained network's first layer sees 3 slices"


def test_predict_reproduces_the_trainers_validation(nnunet, tiny_dataset, trained_slab_model, tmp_path):
    """The trainer's final validation runs the predictor of `nnunet25d predict`: same labels, same probabilities
    (up to the preprocessing being redone from the raw image); stock nnUNetv2_predict agrees on the labels within
    the float16 rounding of its deep tile."""
    validation = trained_slab_model / "fold_0" / "validation"
    case = sorted(validation.glob("*.nii.gz"))[0].name.replace(".nii.gz", "")
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(nnunet.raw / tiny_dataset / "imagesTr" / f"{case}_0000.nii.gz", inputs)
    common = ["-i", str(inputs), "-d", str(TINY_ID), "-c", "2d", "-f", "0", "-tr", TINY_TRAINER, "-device", "cpu",
              "-npp", "1", "-nps", "1"]
    nnunet.run("nnunet25d", "predict", "-o", str(tmp_path / "slab"), *common, "--save_probabilities")
    expected = read_label(validation / f"{case}.nii.gz")
    assert np.array_equal(read_label(tmp_path / "slab" / f"{case}.nii.gz"), expected)
    probabilities = np.load(tmp_path / "slab" / f"{case}.npz")["probabilities"]
    assert np.abs(probabilities - np.load(validation / f"{case}.npz")["probabilities"]).max() < 1e-3
    nnunet.run("nnUNetv2_predict", "-o", str(tmp_path / "stock"), *common)
    assert np.mean(read_label(tmp_path / "stock" / f"{case}.nii.gz") == expected) > 0.999


def test_predict_names_the_trained_folds_and_a_broken_checkpoint(nnunet, tiny_dataset, trained_slab_model, tmp_path):
    common = ["-i", str(nnunet.raw / tiny_dataset / "imagesTs"), "-o", str(tmp_path / "out"), "-d", str(TINY_ID),
              "-c", "2d", "-device", "cpu"]
    result = nnunet.run("nnunet25d", "predict", *common, "-tr", TINY_TRAINER, "-f", "0", "1", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "fold(s) 1" in result.stderr and "trained: 0 (predict with -f 0)" in result.stderr
    broken = nnunet.results / tiny_dataset / f"{TINY_TRAINER}__BrokenPlans__2d"
    shutil.copytree(trained_slab_model, broken)
    checkpoint = broken / "fold_0" / "checkpoint_final.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    result = nnunet.run("nnunet25d", "predict", *common, "-tr", TINY_TRAINER, "-p", "BrokenPlans", "-f", "0",
                        check=False)
    assert result.returncode == 1 and f"checkpoint {checkpoint} is truncated or corrupted" in result.stderr


def test_validation_rerun_with_npz(nnunet, trained_slab_model):
    npz = trained_slab_model / "fold_0" / "validation"
    for f in npz.glob("*.npz"):
        f.unlink()
    nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "0", "-tr", TINY_TRAINER, "-device", "cpu", "--val", "--npz",
               training=True)
    assert len(list(npz.glob("*.npz"))) == len(list(npz.glob("*.nii.gz"))) > 0


@pytest.fixture(scope="module")
def trained_baseline(nnunet, tiny_dataset) -> Path:
    nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "0", "-tr", BASELINE_TRAINER, "-device", "cpu", "--npz",
               training=True)
    return nnunet.model_folder(tiny_dataset, BASELINE_TRAINER)


def test_find_best_configuration_and_ensemble(nnunet, tiny_dataset, trained_slab_model, trained_baseline, tmp_path):
    nnunet.run("nnUNetv2_find_best_configuration", str(TINY_ID), "-c", "2d", "-tr", TINY_TRAINER, BASELINE_TRAINER,
               "-f", "0", "-np", "1")
    info = json.loads((nnunet.results / tiny_dataset / "inference_information.json").read_text())
    evaluated = json.dumps(info["all_results"])
    assert TINY_TRAINER in evaluated and BASELINE_TRAINER in evaluated and "ensemble" in evaluated.lower()

    test_images = nnunet.raw / tiny_dataset / "imagesTs"
    outputs = []
    for trainer, command in ((TINY_TRAINER, ["nnunet25d", "predict"]), (BASELINE_TRAINER, ["nnUNetv2_predict"])):
        out = tmp_path / trainer
        nnunet.run(*command, "-i", str(test_images), "-o", str(out), "-d", str(TINY_ID), "-c", "2d",
                   "-f", "0", "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1", "--save_probabilities")
        outputs.append(str(out))
    nnunet.run("nnUNetv2_ensemble", "-i", *outputs, "-o", str(tmp_path / "ensemble"), "-np", "1")
    for image in test_images.glob("*_0000.nii.gz"):
        case = image.name.replace("_0000.nii.gz", ".nii.gz")
        assert read_label(tmp_path / "ensemble" / case).shape == read_label(image).shape


def test_interrupted_training_resumes_with_c(nnunet, tiny_dataset):
    trainer = "nnUNetTrainer25D_10epochs_25iters"
    fold = nnunet.model_folder(tiny_dataset, trainer) / "fold_1"
    process = nnunet.popen("nnUNetv2_train", str(TINY_ID), "2d", "1", "-tr", trainer, "-device", "cpu")
    deadline = time.time() + 300
    while not (fold / "checkpoint_latest.pth").exists():
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint after 300 s"
        time.sleep(0.2)
    time.sleep(0.3)  # let torch.save finish writing
    process.kill()
    process.wait()
    assert not (fold / "checkpoint_final.pth").exists(), "the run finished before it could be interrupted"
    logs_before = set(fold.glob("training_log_*.txt"))
    time.sleep(1.1)  # nnU-Net names logs by the second

    nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "1", "-tr", trainer, "-device", "cpu", "--c", training=True)
    resumed_log = (set(fold.glob("training_log_*.txt")) - logs_before).pop().read_text()
    epochs = [int(e) for e in re.findall(r"Epoch (\d+)\s*$", resumed_log, flags=re.MULTILINE)]
    assert epochs and epochs[0] > 0 and epochs[-1] == 9, f"the resumed run trained epochs {epochs}"
    final = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 10
    assert (fold / "validation" / "summary.json").exists()
