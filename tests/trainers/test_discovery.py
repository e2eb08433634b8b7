"""nnU-Net's own trainer lookup finds every plugin trainer through nnUNet_extTrainer."""
import os
import pickle
import subprocess
import sys
from os.path import join

import nnunetv2
import pytest
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.trainers.registry import TRAINERS


@pytest.fixture
def ext_trainer(monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINER_FOLDER))


def test_env_command_prints_the_export_line():
    out = subprocess.run([sys.executable, "-m", "nnunet_25d.cli", "env"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"export nnUNet_extTrainer={TRAINER_FOLDER}"
    assert os.path.isdir(TRAINER_FOLDER)


@pytest.mark.parametrize("name", ["nnUNetTrainer25D", "nnUNetTrainer25D_7slices", "nnUNetTrainer25D_5epochs",
                                  "nnUNetTrainer25D_5slices_2epochs_5iters", "nnUNetTrainer_10epochs_50iters"])
def test_lookup_returns_the_packages_own_class(ext_trainer, name):
    found = recursive_find_trainer_class_by_name(name)
    assert found is TRAINERS[name], "the ext-trainer module must re-export, not redefine"
    assert pickle.loads(pickle.dumps(found)) is found


def test_no_trainer_name_shadows_or_is_shadowed_by_nnunet():
    builtin_folder = join(nnunetv2.__path__[0], "training", "nnUNetTrainer")
    for name in TRAINERS:
        assert recursive_find_python_class(builtin_folder, name, "nnunetv2.training.nnUNetTrainer") is None, name


def test_schedules_set_epochs_and_iterations():
    cls = TRAINERS["nnUNetTrainer25D_5slices_10epochs_50iters"]
    assert cls.slab_size == 5 and issubclass(cls, TRAINERS["nnUNetTrainer25D_5slices"])
