"""Trainer names that look like the plugin's but are not declared: nnU-Net's own lookup says what is wrong."""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess

import pytest
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.benchmark.demo import demo_trainer, demo_trainers
from nnunet_25d.errors import TrainerNameError
from nnunet_25d.trainers.registry import TRAINERS, VIEW_TRAINERS, trainer_name_error
from nnunet_25d.trainers.variants import split_trainer_name


@pytest.fixture
def ext_trainer(monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINER_FOLDER))


def ext_module():
    """The trainers module the way nnU-Net sees it: imported from the folder, as a top-level module."""
    spec = importlib.util.spec_from_file_location("nnunet_25d_trainers", TRAINER_FOLDER / "nnunet_25d_trainers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, says", [
    ("nnUNetTrainer25D_4slices", "positive odd number"),
    ("nnUNetTrainer25DFusion_6slices_10epochs_50iters", "positive odd number"),
    ("nnUNetTrainer25D_9slices", "slab size 9 is not declared"),
    ("nnUNetTrainer25D_2epoch_5iters", "write _2epochs, not _2epoch"),
    ("nnUNetTrainer_2epochs_5iter", "write _5iters, not _5iter"),
    ("nnUNetTrainer25D_1epochs", "write _1epoch, not _1epochs"),
    ("nnUNetTrainer25D_7epochs_30iters", "schedule 7 epochs x 30 iterations is not declared"),
    ("nnUNetTrainer25D_3epochs", "3 epochs is not declared"),
    ("nnUNetTrainer25DAniso_5slices", "nnUNetTrainer25DAniso has no slab-size variants"),
    ("nnUNetTrainer_5slices", "takes no slab size"),
    ("nnUNetTrainer25DMorphMLP_B", "MorphMLP size 'B' is not declared"),
    ("nnUNetTrainer25DFusoin", "unknown base trainer 'nnUNetTrainer25DFusoin'"),
])
def test_undeclared_plugin_names_say_what_is_wrong_and_what_is_close(name, says):
    error = trainer_name_error(name)
    assert isinstance(error, TrainerNameError) and not isinstance(error, AttributeError)
    assert says in str(error)
    close = str(error).split("Closest declared names: ")[1].split(".")[0].split(", ")
    assert close and all(candidate in TRAINERS for candidate in close), close


def test_the_corrected_spelling_comes_first():
    assert "Closest declared names: nnUNetTrainer25D_2epochs_5iters," in str(trainer_name_error(
        "nnUNetTrainer25D_2epoch_5iters"))


@pytest.mark.parametrize("name", ["nnUNetTrainer", "nnUNetTrainer_7epochs", "nnUNetTrainerNoMirroring",
                                  "MyTrainer", "nnUNetTrainer25D", "nnUNetTrainer25D_5slices_10epochs_50iters",
                                  "__path__", "__file__", "_private"])
def test_declared_and_foreign_names_are_not_ours_to_judge(name):
    assert trainer_name_error(name) is None


def test_the_ext_module_raises_only_for_plugin_looking_names():
    module = ext_module()
    assert module.nnUNetTrainer25D_5slices is TRAINERS["nnUNetTrainer25D_5slices"]
    for name in ("__path__", "__wrapped__", "nnUNetTrainerNoMirroring", "SomeOtherPluginsTrainer"):
        assert not hasattr(module, name), name
    with pytest.raises(TrainerNameError, match="positive odd number"):
        hasattr(module, "nnUNetTrainer25D_4slices")


def test_nnunet_lookup_in_process_gives_our_message_and_keeps_its_own_for_other_names(ext_trainer):
    with pytest.raises(TrainerNameError, match="write _2epochs, not _2epoch"):
        recursive_find_trainer_class_by_name("nnUNetTrainer25D_2epoch_5iters")
    with pytest.raises(RuntimeError, match="Could not find requested nnunet trainer"):
        recursive_find_trainer_class_by_name("SomeOtherTrainerName")


def test_a_later_trainer_folder_that_defines_the_name_is_still_reached(tmp_path, monkeypatch):
    (tmp_path / "my_trainers.py").write_text(
        "from nnunet_25d.trainers.registry import nnUNetTrainer25D\n\n\n"
        "class nnUNetTrainer25D_MyLoss(nnUNetTrainer25D):\n    pass\n")
    monkeypatch.setenv("nnUNet_extTrainer", f"{TRAINER_FOLDER}{os.pathsep}{tmp_path}")
    assert recursive_find_trainer_class_by_name("nnUNetTrainer25D_MyLoss").__name__ == "nnUNetTrainer25D_MyLoss"


def test_demo_accepts_every_plugin_trainer_for_the_2d_plan():
    names = demo_trainers()
    assert {"nnUNetTrainer25D", "nnUNetTrainer25D_3slices", "nnUNetTrainer25D_5slices", "nnUNetTrainer25D_7slices",
            "nnUNetTrainer25DFusion_3slices", "nnUNetTrainer25DMorphMLP_N"} <= set(names)
    for name in names:
        assert demo_trainer(name) == name
        assert split_trainer_name(name).epochs is None
    assert not any(issubclass(TRAINERS[name], VIEW_TRAINERS) for name in names)


@pytest.mark.parametrize("name, hint", [
    ("nnUNetTrainer25D_10epochs_50iters", "--slab-trainer nnUNetTrainer25D --schedule 10x50"),
    ("nnUNetTrainer25D_5slices_10epochs_50iters", "--slab-trainer nnUNetTrainer25D_5slices --schedule 10x50"),
])
def test_the_demo_turns_a_schedule_suffix_into_the_schedule_option(name, hint):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        demo_trainer(name)
    assert str(error.value).endswith(hint) and "closest" not in str(error.value)


@pytest.mark.integration
@pytest.mark.parametrize("name, says", [
    ("nnUNetTrainer25D_4slices", "positive odd number"),
    ("nnUNetTrainer25D_2epoch_5iters", "write _2epochs, not _2epoch"),
])
def test_nnunetv2_train_names_the_problem(tmp_path, name, says):
    """Through the real command: the lookup fails before any dataset is touched."""
    env = {**os.environ, "nnUNet_extTrainer": str(TRAINER_FOLDER), "nnUNet_raw": str(tmp_path),
           "nnUNet_preprocessed": str(tmp_path), "nnUNet_results": str(tmp_path)}
    result = subprocess.run(["nnUNetv2_train", "999", "2d", "0", "-tr", name, "-device", "cpu"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert says in result.stderr and "Closest declared names:" in result.stderr, result.stderr[-2000:]
    assert "Could not find requested nnunet trainer" not in result.stderr
