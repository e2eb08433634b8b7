"""How nnUNetTrainer25D gets from nnU-Net's plans to its own: nnU-Net's fingerprint read once, the slab chosen once;
the final validation's predictor swapped in one place and always put back."""
from __future__ import annotations

import json

import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as nnunet_trainer_module

from nnunet_25d.inference.slab_predictor import nnUNetSlabPredictor
from nnunet_25d.trainers import slab_trainer
from nnunet_25d.trainers.registry import TRAINERS


def test_the_validation_predictor_is_the_slab_predictor_only_inside_the_block():
    assert nnunet_trainer_module.nnUNetPredictor is nnUNetPredictor
    with slab_trainer.slab_validation_predictor():
        built = nnunet_trainer_module.nnUNetPredictor(tile_step_size=0.5, device=torch.device("cpu"))
        assert isinstance(built, nnUNetSlabPredictor) and built.tile_step_size == 0.5
        assert built.backend == "onnxruntime"  # the final validation's engine on CPU (onnxruntime is installed)
    assert nnunet_trainer_module.nnUNetPredictor is nnUNetPredictor
    with pytest.raises(KeyError):
        with slab_trainer.slab_validation_predictor():
            raise KeyError("validation failed")
    assert nnunet_trainer_module.nnUNetPredictor is nnUNetPredictor


def counted(monkeypatch, module, name: str) -> list:
    calls, original = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.mark.parametrize("trainer", ["nnUNetTrainer25D", "nnUNetTrainer25D_5slices"])
def test_building_a_trainer_reads_the_fingerprint_once_and_chooses_the_slab_at_most_once(
        nnunet, tiny_dataset, monkeypatch, trainer):
    reads = counted(monkeypatch, slab_trainer, "read_fingerprint")
    choices = counted(monkeypatch, slab_trainer, "choose_slab")
    nnunet.set_environ(monkeypatch)
    plans = nnunet.plans(tiny_dataset)
    plans["continue_training"] = False
    dataset_json = json.loads((nnunet.preprocessed / tiny_dataset / "dataset.json").read_text())
    built = TRAINERS[trainer](plans, "2d", 0, dataset_json, torch.device("cpu"))
    assert len(reads) == 1
    assert len(choices) == (1 if TRAINERS[trainer].self_configuring else 0)
    assert built.configuration_manager.configuration["nnunet_25d"]["slab_size"] == built.slab_size
