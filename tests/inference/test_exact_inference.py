"""Every slice of a slab model is predicted from its true slab: by ``nnUNetSlabPredictor`` at any depth, by stock
``nnUNetv2_predict`` within its tile's exact range (and a warning past it).

The reference is nnU-Net 2d's own predictor (its in-plane tiles, Gaussian, step size, mirroring, float16
accumulation) run slice by slice on a volume whose channels are each slice's hand-cut, zero-padded slab, through the
trainer's stem and 2D network. Volumes are larger than the in-plane patch (several tiles) and have two channels, the
first all zero.
"""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from nnunet_25d.architectures.blocks.stock_tile import StockInferenceWarning
from nnunet_25d.inference.slab_predictor import nnUNetSlabPredictor
from nnunet_25d.planning.inference_depth import stock_exact_depth
from nnunet_25d.trainers.registry import TRAINERS
from nnunet_25d.geometry.views import from_view, permute_spatial, plane_axes, to_view

pytestmark = pytest.mark.integration
SLAB_TRAINERS = ["nnUNetTrainer25D", "nnUNetTrainer25D_5slices", "nnUNetTrainer25D_7slices", "nnUNetTrainer25DFusion",
                 "nnUNetTrainer25DUVNet", "nnUNetTrainer25DASPP", "nnUNetTrainer25DDeepLab", "nnUNetTrainer25DMorphMLP_N",
                 "nnUNetTrainer25DResampled", "nnUNetTrainer25D_BorderLoss"]
VIEW_TRAINERS = ["nnUNetTrainer25DCoronal", "nnUNetTrainer25DSagittal"]
DEPTHS = [1, 4, 13]  # thinner than a training patch, a few patches
DEEP = [257, 600, 1000]  # deeper than any tile the plans hold
TOLERANCE = 0.05  # logit: nnU-Net 2d's own float16 error at its in-plane tile corners is ~0.03
# stock nnUNetv2_predict within its range: true slabs, but float16 weights at the deep tile's ends (exp(-2) of the
# centre, times the in-plane corner's) round coarser than 2d's own: measured 0.105 at a logit range of 12
STOCK_TOLERANCE = 0.15
CHANNELS, CLASSES, IN_PLANE_EXTRA = 2, 3, 9


def shrunk(plans: dict, configuration: str) -> dict:
    """Plans with the networks' features / 8 (fast on CPU; the tiling does not depend on them)."""
    kwargs = plans["configurations"][configuration]["architecture"]["arch_kwargs"]
    for key in ("features_per_stage", "conv_features"):
        if key in kwargs:
            kwargs[key] = [max(2, f // 8) for f in kwargs[key]]
    if "reduction_features" in kwargs:
        kwargs["reduction_features"] = 4
    return plans


def built_network(nnunet, dataset: str, trainer_name: str, configuration: str, small: bool = True):
    trainer_class = TRAINERS[trainer_name]
    plans = trainer_class.derive_plans(nnunet.plans(dataset), configuration)
    plans_manager = PlansManager(shrunk(plans, configuration) if small else plans)
    configuration_manager = plans_manager.get_configuration(configuration)
    torch.manual_seed(0)
    network = trainer_class.build_network_architecture(plans_manager, configuration_manager, CHANNELS, CLASSES,
                                                       False).eval()
    return with_visible_logits(network), plans_manager, configuration_manager


@torch.no_grad()
def with_visible_logits(network: nn.Module) -> nn.Module:
    """Scale the last 2D convolution so that the logits span a few units: nnU-Net 2d's float16 error is absolute
    (up to ~0.05 logit at tile corners), so a freshly initialised DeepLab's logits (range ~0.03) would hide it."""
    patch = [network.slab_size + 2, 32, 32]
    x = torch.randn(1, CHANNELS, *[patch[a] if a == network.slab_axis else 32 for a in range(3)])
    network.interior_only = True
    spread = (lambda y: (y.max() - y.min()).item())(network(x))
    network.interior_only = False
    if spread < 2:
        head = [m for m in network.modules() if isinstance(m, nn.Conv2d)][-1]
        head.weight *= 4 / spread
        if head.bias is not None:
            head.bias *= 4 / spread
    return network


def dataset_json(nnunet, dataset: str) -> dict:
    return json.loads((nnunet.preprocessed / dataset / "dataset.json").read_text())


class StackedSlab2D(nn.Module):
    """(1, C * S, h, w) slab-stacked slice -> the slab network's stem and 2D network, as nnU-Net 2d calls it."""

    def __init__(self, network: nn.Module, channels: int):
        super().__init__()
        self.network, self.channels = network, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, cs, h, w = x.shape
        return self.network.network_2d(self.network.stem(x.reshape(n, self.channels, cs // self.channels, h, w)))


def stacked_slabs(view: torch.Tensor, slab_size: int) -> torch.Tensor:
    """(C, D, H, W) -> (C * S, D, H, W): channel c * S + s of slice z is slice z - k + s (zero beyond the ends)."""
    k, depth = slab_size // 2, view.shape[1]
    padded = nn.functional.pad(view, (0, 0, 0, 0, k, k))
    return torch.stack([padded[:, s:s + depth] for s in range(slab_size)], 1).flatten(0, 1)


def in_plane_tile(network, configuration_manager) -> list[int]:
    return [configuration_manager.patch_size[a] for a in plane_axes(network.slab_axis)]


def nnunet_2d_reference(nnunet, dataset, network, tile: list[int], volume: torch.Tensor, mirroring: bool
                        ) -> torch.Tensor:
    """nnU-Net 2d's predictor (in-plane ``tile``) over every slice's stacked slab; (K, *volume), volume layout."""
    axis = network.slab_axis
    plans_manager = PlansManager(nnunet.plans(dataset))
    configuration_manager = plans_manager.get_configuration("2d")
    configuration_manager.configuration["patch_size"] = list(tile)
    predictor = nnUNetPredictor(0.5, True, mirroring, False, torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(StackedSlab2D(network, volume.shape[0]), plans_manager, configuration_manager,
                                    None, dataset_json(nnunet, dataset), "reference", (0, 1))
    view = permute_spatial(volume, to_view(axis))
    logits = predictor.predict_sliding_window_return_logits(stacked_slabs(view, network.slab_size))
    return permute_spatial(logits, from_view(axis))


def slab_predictor(nnunet, dataset, network, plans_manager, configuration_manager, mirroring: bool,
                   backend: str = "torch"):
    mirror_axes = plane_axes(network.slab_axis)
    predictor = nnUNetSlabPredictor(0.5, True, mirroring, False, torch.device("cpu"), allow_tqdm=False,
                                    backend=backend)
    predictor.manual_initialization(network, plans_manager, configuration_manager, None,
                                    dataset_json(nnunet, dataset), "test", mirror_axes)
    return predictor


def random_volume(configuration_manager, axis: int, depth: int) -> torch.Tensor:
    """(2, ...) with ``depth`` slices along ``axis``, in-plane two tiles; channel 0 all zero."""
    shape = list(configuration_manager.patch_size)
    shape[max(plane_axes(axis))] += IN_PLANE_EXTRA  # two in-plane tiles
    shape[axis] = depth
    volume = torch.randn(CHANNELS, *shape)
    volume[0] = 0
    return volume


def assert_close(predicted: torch.Tensor, reference: torch.Tensor, tolerance: float = TOLERANCE) -> None:
    assert predicted.shape == reference.shape
    error = (predicted.float() - reference.float()).abs().max().item()
    spread = (reference.max() - reference.min()).item()
    assert spread > 1 and error <= tolerance, f"max error {error:.4g}, range {spread:.4g}"


def check_depths(nnunet, dataset, trainer_name, configuration, depths, mirroring) -> None:
    network, plans_manager, configuration_manager = built_network(nnunet, dataset, trainer_name, configuration)
    predictor = slab_predictor(nnunet, dataset, network, plans_manager, configuration_manager, mirroring)
    torch.manual_seed(1)
    for depth in depths:
        volume = random_volume(configuration_manager, network.slab_axis, depth)
        assert_close(predictor.predict_sliding_window_return_logits(volume),
                     nnunet_2d_reference(nnunet, dataset, network, in_plane_tile(network, configuration_manager),
                                         volume, mirroring))


@pytest.mark.parametrize("trainer_name", SLAB_TRAINERS)
def test_slab_predictor_gives_every_slice_its_true_slab(nnunet, tiny_dataset, trainer_name):
    check_depths(nnunet, tiny_dataset, trainer_name, "2d", DEPTHS, mirroring=True)


@pytest.mark.parametrize("trainer_name", VIEW_TRAINERS)
def test_slab_predictor_along_the_views_axes(nnunet, tiny_dataset, trainer_name):
    check_depths(nnunet, tiny_dataset, trainer_name, "3d_fullres", DEPTHS[:3], mirroring=True)


def test_slab_predictor_is_exact_far_deeper_than_any_tile(nnunet, tiny_dataset):
    check_depths(nnunet, tiny_dataset, "nnUNetTrainer25D_5slices", "2d", DEEP, mirroring=False)


def test_slab_predictor_never_holds_a_deep_tile(nnunet, tiny_dataset):
    """The network sees chunks of at most ``slices_per_forward`` + 2k slices and in-plane tiles, never the volume."""
    network, plans_manager, configuration_manager = built_network(nnunet, tiny_dataset, "nnUNetTrainer25D", "2d")
    seen = []
    network.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    predictor = slab_predictor(nnunet, tiny_dataset, network, plans_manager, configuration_manager, False)
    predictor.predict_sliding_window_return_logits(random_volume(configuration_manager, 0, 50))
    tile = configuration_manager.patch_size[1:]
    assert {shape[2] for shape in seen} <= set(range(3, network.slices_per_forward + 3))
    assert {shape[3:] for shape in seen} == {tuple(tile)} and max(shape[2] for shape in seen) < 50


def check_onnxruntime_against_torch(nnunet, dataset, trainer_name, configuration, depths, mirroring) -> None:
    """The predictor on ONNX Runtime (what the final validation runs on CPU) against the same predictor on torch:
    logits within float16 error, labels equal on >= 99.99 % of voxels."""
    network, plans_manager, configuration_manager = built_network(nnunet, dataset, trainer_name, configuration)
    on_torch = slab_predictor(nnunet, dataset, network, plans_manager, configuration_manager, mirroring)
    on_onnxruntime = slab_predictor(nnunet, dataset, network, plans_manager, configuration_manager, mirroring,
                                    "onnxruntime")
    torch.manual_seed(2)
    for depth in depths:
        volume = random_volume(configuration_manager, network.slab_axis, depth)
        predicted = on_onnxruntime.predict_sliding_window_return_logits(volume)
        reference = on_torch.predict_sliding_window_return_logits(volume)
        assert on_onnxruntime.backend == "onnxruntime" and len(on_onnxruntime._graphs) == 1
        assert_close(predicted, reference)
        assert (predicted.argmax(0) == reference.argmax(0)).float().mean() >= 0.9999


@pytest.mark.parametrize("trainer_name", SLAB_TRAINERS)
def test_onnxruntime_slab_predictor_equals_torch(nnunet, tiny_dataset, trainer_name):
    check_onnxruntime_against_torch(nnunet, tiny_dataset, trainer_name, "2d", DEPTHS, mirroring=True)


@pytest.mark.parametrize("trainer_name", VIEW_TRAINERS)
def test_onnxruntime_slab_predictor_along_the_views_axes(nnunet, tiny_dataset, trainer_name):
    check_onnxruntime_against_torch(nnunet, tiny_dataset, trainer_name, "3d_fullres", DEPTHS, mirroring=True)


def test_onnxruntime_slab_predictor_far_deeper_than_any_tile(nnunet, tiny_dataset):
    check_onnxruntime_against_torch(nnunet, tiny_dataset, "nnUNetTrainer25D_5slices", "2d", DEEP[:1], mirroring=True)


def stock_predictor(nnunet, dataset, network, plans_manager, configuration_manager) -> nnUNetPredictor:
    predictor = nnUNetPredictor(0.5, True, False, False, torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration_manager, None,
                                    dataset_json(nnunet, dataset), "test", None)
    return predictor


@pytest.mark.parametrize("trainer_name", ["nnUNetTrainer25D_5slices", "nnUNetTrainer25DMorphMLP_N"])
def test_stock_predictor_is_exact_within_its_range_and_warns_past_it(nnunet, tiny_dataset, trainer_name):
    network, plans_manager, configuration_manager = built_network(nnunet, tiny_dataset, trainer_name, "2d")
    predictor = stock_predictor(nnunet, tiny_dataset, network, plans_manager, configuration_manager)
    exact = stock_exact_depth(configuration_manager.patch_size[0])
    torch.manual_seed(1)
    for depth in (1, exact):
        volume = random_volume(configuration_manager, 0, depth)
        with warnings.catch_warnings():
            warnings.simplefilter("error", StockInferenceWarning)
            predicted = predictor.predict_sliding_window_return_logits(volume)
        tile = in_plane_tile(network, configuration_manager)
        assert_close(predicted, nnunet_2d_reference(nnunet, tiny_dataset, network, tile, volume, False),
                     STOCK_TOLERANCE)
    with pytest.warns(StockInferenceWarning, match="nnunet25d predict"):
        predictor.predict_sliding_window_return_logits(random_volume(configuration_manager, 0, exact + 1))
