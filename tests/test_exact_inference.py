"""Stock nnU-Net inference gives every slice the logits of its true slab, for every slab-style trainer.

nnU-Net's own predictor (sliding window, Gaussian weighting, default step 0.5, padding of thin volumes) runs the
network each trainer builds from its derived plans; the reference cuts each slice's slab out of the zero-padded
volume by hand and runs the stem and 2D network on it alone.
"""
from __future__ import annotations

import json

import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_25d.training.registry import TRAINERS
from nnunet_25d.views import from_view, permute_spatial, to_view

pytestmark = pytest.mark.integration
SLAB_TRAINERS = ["nnUNetTrainer25D", "nnUNetTrainer25D_5slices", "nnUNetTrainer25D_7slices",
                 "nnUNetTrainer25DFusion", "nnUNetTrainer25DFusion_5slices", "nnUNetTrainer25DMorphMLP_N"]
VIEW_TRAINERS = ["nnUNetTrainer25DCoronal", "nnUNetTrainer25DSagittal"]
DEPTHS = [1, 4, 13, 200]  # thinner than the training patch, a few patches deep, far deeper than the dataset


def built_network(nnunet, dataset: str, trainer_name: str, configuration: str):
    trainer_class = TRAINERS[trainer_name]
    plans_manager = PlansManager(trainer_class.derive_plans(nnunet.plans(dataset), configuration))
    configuration_manager = plans_manager.get_configuration(configuration)
    torch.manual_seed(0)
    network = trainer_class.build_network_architecture(plans_manager, configuration_manager, 1, 3, False).eval()
    return network, plans_manager, configuration_manager


def predictor_for(nnunet, dataset: str, network, plans_manager, configuration_manager) -> nnUNetPredictor:
    dataset_json = json.loads((nnunet.preprocessed / dataset / "dataset.json").read_text())
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration_manager, None, dataset_json, "test", None)
    return predictor


@torch.no_grad()
def true_slab_logits(network, volume: torch.Tensor) -> torch.Tensor:
    """(K, *volume) logits, slice by slice along the network's slab axis, from hand-cut zero-padded slabs."""
    k = network.slab_size // 2
    view = permute_spatial(volume[None], to_view(network.slab_axis))
    zeros = view.new_zeros((1, view.shape[1], k, *view.shape[3:]))
    padded = torch.cat([zeros, view, zeros], dim=2)
    slices = [network.network_2d(network.stem(padded[:, :, z:z + network.slab_size])) for z in range(view.shape[2])]
    return permute_spatial(torch.stack(slices, dim=2), from_view(network.slab_axis))[0]


def assert_equal_within_one_percent(predicted: torch.Tensor, reference: torch.Tensor) -> None:
    spread = (reference.max() - reference.min()).item()
    error = (predicted.float() - reference).abs().max().item()
    assert spread > 0.01 and error <= 0.01 * spread, f"max error {error:.4g} vs logit range {spread:.4g}"


@pytest.mark.parametrize("trainer_name", SLAB_TRAINERS)
def test_slab_trainers_predict_every_slice_from_its_true_slab(nnunet, tiny_dataset, trainer_name):
    network, plans_manager, configuration_manager = built_network(nnunet, tiny_dataset, trainer_name, "2d")
    predictor = predictor_for(nnunet, tiny_dataset, network, plans_manager, configuration_manager)
    in_plane = configuration_manager.patch_size[1:]
    torch.manual_seed(1)
    for depth in DEPTHS:
        volume = torch.randn(1, depth, *in_plane)
        assert_equal_within_one_percent(predictor.predict_sliding_window_return_logits(volume),
                                        true_slab_logits(network, volume))


@pytest.mark.parametrize("trainer_name", VIEW_TRAINERS)
def test_view_trainers_predict_every_slice_from_its_true_slab(nnunet, tiny_dataset, trainer_name):
    network, plans_manager, configuration_manager = built_network(nnunet, tiny_dataset, trainer_name, "3d_fullres")
    predictor = predictor_for(nnunet, tiny_dataset, network, plans_manager, configuration_manager)
    torch.manual_seed(1)
    for depth in DEPTHS[:3]:
        shape = list(configuration_manager.patch_size)
        shape[network.slab_axis] = depth
        volume = torch.randn(1, *shape)
        assert_equal_within_one_percent(predictor.predict_sliding_window_return_logits(volume),
                                        true_slab_logits(network, volume))
