"""``nnunet25d trainers``, variants made on demand, and the trainer folder of version 0.1."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.trainers import catalogue
from nnunet_25d.trainers.registry import HAND_WRITTEN_BY_NAME, TRAINERS, trainer_class


def nnunet25d(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnunet_25d.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_the_listing_names_every_hand_written_trainer_once_with_its_configuration_and_the_grammar():
    out = nnunet25d("trainers")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    rows = {line.split()[0]: line.split()[1] for line in lines[1:] if line.startswith("nnUNetTrainer")}
    assert set(rows) == set(HAND_WRITTEN_BY_NAME) and len(HAND_WRITTEN_BY_NAME) == 28
    assert rows["nnUNetTrainer25D"] == "2d" and rows["nnUNetTrainer25DAniso"] == "3d_fullres"
    assert rows["nnUNetTrainer25DCoronal"] == "3d_fullres"
    assert "Trainer names: <trainer>[_BorderLoss][_<n>slices][_<E>epochs[_<I>iters]][_seed<N>]" in out.stdout
    assert all(len(line) < 200 for line in lines)


def test_a_pattern_filters_by_substring_or_glob_case_insensitively():
    assert [e.name for e in catalogue.entries("coronal")] == ["nnUNetTrainer25DCoronal"]
    assert {e.name for e in catalogue.entries("*Aniso_*Dice*")} == {"nnUNetTrainer25DAniso_HardnessDice",
                                                                   "nnUNetTrainer25DAniso_HardnessDiceDetached"}
    assert catalogue.listing("nothing-like-this").startswith("no trainer matches 'nothing-like-this'")


def test_every_trainer_in_the_guide_is_hand_written_and_trains_on_a_known_configuration():
    assert set(catalogue.GUIDE) == set(HAND_WRITTEN_BY_NAME)
    assert {configuration for configuration, _ in catalogue.GUIDE.values()} == {"2d", "3d_fullres"}


def test_the_description_is_the_docstrings_first_sentence_in_plain_text():
    class Documented:
        """Uses :class:`SlabNetwork` on ``2d`` data. Second sentence."""

    assert catalogue.describe(Documented) == "Uses SlabNetwork on 2d data"
    assert catalogue.describe(Documented, width=10) == "Uses Slab…"


def test_examples_of_the_grammar_are_declared_names():
    for name in ("nnUNetTrainer25D_5slices_10epochs_50iters", "nnUNetTrainer25DFusion_BorderLoss_5slices",
                 "nnUNetTrainer25DCoronal_1slice", "nnUNetTrainer_10epochs_50iters", "nnUNetTrainer25D_1epoch"):
        assert name in TRAINERS, name
    assert len(TRAINERS) == 1574 and len(list(TRAINERS)) == 1574


MADE_BY_A_LOOKUP = """
import inspect, sys
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
found = recursive_find_trainer_class_by_name(sys.argv[1])
registry = sys.modules["nnunet_25d.trainers.registry"]
made = [name for name, value in vars(registry).items() if inspect.isclass(value) and value.__module__ == registry.__name__ and name.startswith("nnUNetTrainer")]
print(found.__name__, sorted(made))
"""


def test_a_lookup_builds_only_the_classes_of_the_name_asked_for():
    env = {**os.environ, "nnUNet_extTrainer": str(TRAINER_FOLDER)}
    name = "nnUNetTrainer25DFusion_BorderLoss_5slices_10epochs_50iters_seed2"
    out = subprocess.run([sys.executable, "-c", MADE_BY_A_LOOKUP, name], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1].split(" ", 1) == [name, str(sorted([
        "nnUNetTrainer25DFusion_BorderLoss", "nnUNetTrainer25DFusion_BorderLoss_5slices",
        "nnUNetTrainer25DFusion_BorderLoss_5slices_10epochs_50iters", name]))]


def test_a_made_class_is_made_once_and_is_the_subclass_chain_of_its_name():
    cls = trainer_class("nnUNetTrainer25D_BorderLoss_7slices_5epochs_seed3")
    assert cls is trainer_class("nnUNetTrainer25D_BorderLoss_7slices_5epochs_seed3")
    assert cls.slab_size == 7 and cls.seed == 3
    assert [c.__name__ for c in cls.__mro__[1:4]] == ["nnUNetTrainer25D_BorderLoss_7slices_5epochs",
                                                      "nnUNetTrainer25D_BorderLoss_7slices",
                                                      "nnUNetTrainer25D_BorderLoss"]
    assert trainer_class("nnUNetTrainer25DPsiNet_BorderLoss") is None  # not declared
    assert trainer_class("nnUNetTrainer25D_seed0") is None


def test_the_trainer_folder_of_version_0_1_gets_one_line_naming_nnunet25d_env(tmp_path):
    old_folder = Path(TRAINER_FOLDER).parent
    env = {**os.environ, "nnUNet_extTrainer": str(old_folder), "nnUNet_raw": str(tmp_path),
           "nnUNet_preprocessed": str(tmp_path), "nnUNet_results": str(tmp_path)}
    result = subprocess.run(["nnUNetv2_train", "999", "2d", "0", "-tr", "nnUNetTrainer25D", "-device", "cpu"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"nnunet_25d: nnUNet_extTrainer points at {old_folder}") and "nnunet25d env" in last


@pytest.mark.parametrize("name", ["nnUNetTrainer25D_5slices", "nnUNetTrainer25D_seed4"])
def test_nnunet_finds_made_variants_through_the_new_folder(name, monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINER_FOLDER))
    assert recursive_find_trainer_class_by_name(name) is trainer_class(name)
