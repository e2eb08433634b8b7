"""nnUNetTrainer25DDeepLab (slab as channels of smp's DeepLabV3+) and nnUNetTrainer25DASPP (ASPP bottleneck on the
planned U-Net): derived plans, networks built the way nnU-Net builds them, ASPP receptive fields, the CLI flow."""
from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from nnunet_25d.architectures.blocks.aspp import ASPP
from nnunet_25d.planning.configuration import ConfigurationError
from nnunet_25d.trainers.deeplab_trainer import aspp_rates_for, nnUNetTrainer25DASPP, nnUNetTrainer25DDeepLab

PLANNED_PATCHES = [(64, 64), (96, 80), (192, 160)]
TINY_FEATURES = (4, 8, 16, 16, 16, 16, 16)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Unit tests here run one small forward after the other: one thread is as fast, and does not stall when
    other processes hold the cores (a 2-thread DPN forward took 20x longer on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planned_plans(patch: tuple[int, int], batch_size: int = 12, median_depth: int = 20) -> dict:
    """nnU-Net-style plans with a 2d configuration for ``patch``: stages, kernels and strides from nnU-Net's own
    planner function (0.8 mm pixels), tiny feature counts so that networks run fast."""
    _, strides, kernels, patch, _ = get_pool_and_conv_props((0.8, 0.8), patch, 4, 999999)
    n = len(strides)
    return {
        "dataset_name": "Dataset999_Planned", "plans_name": "nnUNetPlans",
        "original_median_shape_after_transp": [median_depth, *map(int, patch)],
        "configurations": {"2d": {
            "data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": batch_size, "patch_size": [int(p) for p in patch], "spacing": [0.8, 0.8],
            "median_image_size_in_voxels": [int(p) for p in patch],
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": n, "features_per_stage": list(TINY_FEATURES[:n]),
                    "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [list(k) for k in kernels],
                    "strides": [list(s) for s in strides], "n_conv_per_stage": [2] * n,
                    "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                    "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
                },
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
        }},
    }


def built_from_plans(trainer_class, plans: dict, deep_supervision: bool = False):
    """(network in eval mode, configuration manager) exactly as nnU-Net's trainer and predictor build it."""
    manager = PlansManager(trainer_class.derive_plans(plans, "2d"))
    configuration = manager.get_configuration("2d")
    torch.manual_seed(0)
    network = trainer_class.build_network_architecture(manager, configuration, 1, 3, deep_supervision)
    return network.eval(), configuration


def deep_supervision_shapes(configuration, shape: np.ndarray, classes: int = 3) -> list[tuple[int, ...]]:
    """The output shapes nnU-Net's deep supervision expects: one per scale of the plans' pooling strides."""
    strides = np.array(configuration.pool_op_kernel_sizes)
    return [(1, classes, *(shape // np.prod(strides[:i + 1], axis=0))) for i in range(len(strides) - 1)]


def assert_slice_depends_on_its_slab_only(network, in_plane: tuple[int, int], k: int) -> None:
    """Slice z of the output changes with input slices z-k..z+k and with no other slice (z-k-1, z+k+1: outside).
    Each batch sample of one forward pass holds the same volume with one slice changed (eval mode: samples do not
    interact)."""
    torch.manual_seed(1)
    depth, z = 2 * k + 3, k + 1
    x = torch.randn(1, 1, depth, *in_plane)
    variants = x.repeat(depth + 1, 1, 1, 1, 1)
    for offset in range(-z, depth - z):
        variants[1 + z + offset, :, z + offset] += torch.randn(*in_plane)
    with torch.no_grad():
        outputs = network(variants)[:, :, z]
    for offset in range(-z, depth - z):
        moved = not torch.allclose(outputs[1 + z + offset], outputs[0], atol=1e-6)
        assert moved == (abs(offset) <= k), f"offset {offset}"


def impulse_support(conv: nn.Module, size: int = 41) -> set[tuple[int, int]]:
    """Offsets from a unit impulse at the centre where ``conv``'s response (bias removed) is non-zero."""
    impulse = torch.zeros(1, conv_in_channels(conv), size, size)
    impulse[:, :, size // 2, size // 2] = 1
    with torch.no_grad():
        response = (conv(impulse) - conv(torch.zeros_like(impulse))).abs().sum(dim=(0, 1))
    return {(int(i) - size // 2, int(j) - size // 2) for i, j in response.nonzero()}


def conv_in_channels(conv: nn.Module) -> int:
    return next(m for m in conv.modules() if isinstance(m, nn.Conv2d)).in_channels


def offsets(d: int) -> set[tuple[int, int]]:
    return {(a, b) for a in (-d, 0, d) for b in (-d, 0, d)}


# --- DeepLabV3+ ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("patch, rounded", [((64, 64), [64, 64]), ((96, 80), [96, 80]), ((100, 90), [112, 96])])
def test_deeplab_plans_round_the_patch_to_the_output_stride_and_store_the_network(patch, rounded):
    plans = planned_plans(patch)
    plans["configurations"]["2d"]["patch_size"] = list(patch)  # also a patch nnU-Net would not plan
    derived = nnUNetTrainer25DDeepLab.derive_plans(plans, "2d")
    configuration = derived["configurations"]["2d"]
    assert configuration["patch_size"][1:] == rounded
    assert configuration["nnunet_25d"]["training_patch_size"][1:] == rounded
    kwargs = configuration["architecture"]["arch_kwargs"]
    assert kwargs["network_2d"].endswith("DeepLabV3Plus2D") and kwargs["encoder_name"] == "dpn68"
    assert kwargs["atrous_rates"] == [6, 12, 18] and kwargs["encoder_output_stride"] == 16
    assert configuration["data_identifier"] == "nnUNetPlans_2d", "trains on the 2d plan's preprocessed data"
    assert nnUNetTrainer25DDeepLab.derive_plans(derived, "2d") == derived, "idempotent"


@pytest.mark.parametrize("patch", PLANNED_PATCHES)
def test_deeplab_network_keeps_every_slice_at_full_resolution(patch):
    network, configuration = built_from_plans(nnUNetTrainer25DDeepLab, planned_plans(patch))
    with torch.no_grad():
        output = network(torch.randn(1, 1, 2, *configuration.patch_size[1:]))
    assert isinstance(output, torch.Tensor), "one output: nnU-Net's deep supervision is off for this trainer"
    assert tuple(output.shape) == (1, 3, 2, *patch)


def test_deeplab_refuses_deep_supervision_with_the_fix():
    with pytest.raises(ValueError, match="deep_supervision=False"):
        built_from_plans(nnUNetTrainer25DDeepLab, planned_plans((64, 64)), deep_supervision=True)


def pooling_group_counts(network) -> list[int]:
    """The group counts of the GroupNorms in a DeepLabV3Plus2D's ASPP image-pooling branch."""
    return [m.num_groups for m in network.aspp.convs[-1] if isinstance(m, nn.GroupNorm)]


def test_deeplab_trains_on_a_step_of_one_slice():
    """A DDP rank with a 2d batch of 2 holds one slice: smp's image-pooling BatchNorm would see one value per
    channel and raise; the GroupNorm there trains."""
    network, _ = built_from_plans(nnUNetTrainer25DDeepLab, planned_plans((64, 64)))
    pooling = network.network_2d.aspp.convs[-1]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in pooling)
    assert pooling_group_counts(network.network_2d) == [32]
    network.train()
    network.interior_only = True
    output = network(torch.randn(1, 1, 3, 64, 64))
    assert tuple(output.shape) == (1, 3, 1, 64, 64)
    output.square().mean().backward()
    assert all(p.grad is not None for p in pooling.parameters())


def test_deeplab_pooling_groups_must_leave_two_channels_each():
    from nnunet_25d.architectures.deeplab import DeepLabV3Plus2D

    with pytest.raises(ValueError, match="groups of at least two channels"):
        DeepLabV3Plus2D(3, 2, encoder_name="resnet18", decoder_channels=32, pooling_norm_groups=32)


def test_deeplab_slice_depends_on_its_slab_only():
    network, _ = built_from_plans(nnUNetTrainer25DDeepLab, planned_plans((32, 32)))
    assert_slice_depends_on_its_slab_only(network, (32, 32), k=1)


def test_deeplab_aspp_branches_see_exactly_their_atrous_offsets():
    network, _ = built_from_plans(nnUNetTrainer25DDeepLab, planned_plans((64, 64)))
    aspp = network.network_2d.aspp
    atrous_branches = aspp.convs[1:4]
    for branch, rate in zip(atrous_branches, (6, 12, 18)):
        assert impulse_support(branch[0]) == offsets(rate)
    assert impulse_support(aspp.convs[0][0]) == {(0, 0)}


def test_deeplab_output_stride_must_be_8_or_16():
    class Stride32(nnUNetTrainer25DDeepLab):
        encoder_output_stride = 32

    with pytest.raises(ConfigurationError, match="8 or 16"):
        Stride32.derive_plans(planned_plans((64, 64)), "2d")


# --- ASPP module and the ASPP U-Net ---------------------------------------------------------------------------------

def test_aspp_branch_receptive_fields_and_image_pooling():
    torch.manual_seed(0)
    aspp = ASPP(2, 3, rates=(1, 2, 5), norm_op=None, nonlin=None).eval()
    for branch, rate in zip(aspp.branches[1:], (1, 2, 5)):
        assert impulse_support(branch[0]) == offsets(rate)
    assert impulse_support(aspp.branches[0][0]) == {(0, 0)}
    x = torch.randn(1, 2, 9, 7)
    pooled_conv = aspp.pooling[1]
    expected = pooled_conv(x.mean(dim=(2, 3), keepdim=True))  # 1x1 convolution of the image's mean
    with torch.no_grad():
        branches = torch.cat([b(x) for b in aspp.branches] + [expected.expand(-1, -1, 9, 7)], dim=1)
        assert torch.allclose(aspp(x), aspp.project(branches), atol=1e-6)


def test_aspp_rejects_non_positive_rates():
    with pytest.raises(ValueError, match="positive integers"):
        ASPP(4, 4, rates=(0, 6))


@pytest.mark.parametrize("feature_map, rates", [(33, [6, 12, 18]), (66, [12, 24, 36]), (8, [1, 3, 4]),
                                                (4, [1, 2, 3]), (1, [1, 1, 1])])
def test_aspp_rates_keep_deeplabs_share_of_the_feature_map(feature_map, rates):
    assert aspp_rates_for(feature_map) == rates


@pytest.mark.parametrize("patch", PLANNED_PATCHES)
def test_aspp_unet_deep_supervision_outputs_at_the_planned_strides(patch):
    network, configuration = built_from_plans(nnUNetTrainer25DASPP, planned_plans(patch), deep_supervision=True)
    shape = np.array([2, *patch])
    with torch.no_grad():
        outputs = network(torch.randn(1, 1, *shape))
    assert [tuple(o.shape) for o in outputs] == deep_supervision_shapes(configuration, shape)
    strides = np.array(configuration.pool_op_kernel_sizes)
    bottleneck = min(shape[1:] // np.prod(strides, axis=0)[1:])
    aspp = network.network_2d.aspp
    assert aspp.rates == aspp_rates_for(bottleneck)
    for branch, rate in zip(aspp.branches[1:], aspp.rates):
        assert branch[0].dilation == (rate, rate)


def test_aspp_unet_slice_depends_on_its_slab_only():
    from nnunet_25d.trainers.registry import TRAINERS

    network, _ = built_from_plans(TRAINERS["nnUNetTrainer25DASPP_5slices"], planned_plans((32, 32)))
    assert_slice_depends_on_its_slab_only(network, (32, 32), k=2)


# --- found by name, benchmarked by name, trained and predicted through the CLI -------------------------------------

@pytest.mark.parametrize("name", ["nnUNetTrainer25DDeepLab", "nnUNetTrainer25DASPP_5slices",
                                  "nnUNetTrainer25DUVNet_2epochs_5iters"])
def test_found_by_nnunets_lookup_and_in_the_benchmark(monkeypatch, name):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_25d import TRAINER_FOLDER
    from nnunet_25d.benchmark.command import variants_from_args
    from nnunet_25d.trainers.registry import TRAINERS

    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINER_FOLDER))
    assert recursive_find_trainer_class_by_name(name) is TRAINERS[name]
    base = name.replace("_2epochs_5iters", "")
    [variant] = variants_from_args(argparse.Namespace(variants=[base], schedule=(2, 5)))
    assert (variant.trainer_name, variant.configuration) == (f"{base}_2epochs_5iters", "2d")


def read_label(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def train_then_predict_validation_case(nnunet, dataset: str, trainer: str, tmp_path) -> dict:
    """Train fold 0 with ``--npz``; predict one validation case with nnUNetv2_predict, which must reproduce the
    trainer's own validation output. Returns the model folder's plans.json."""
    nnunet.run("nnUNetv2_train", "971", "2d", "0", "-tr", trainer, "-device", "cpu", "--npz", training=True)
    model = nnunet.model_folder(dataset, trainer)
    validation = model / "fold_0" / "validation"
    case = sorted(validation.glob("*.nii.gz"))[0].name.replace(".nii.gz", "")
    assert (validation / f"{case}.npz").exists()
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(nnunet.raw / dataset / "imagesTr" / f"{case}_0000.nii.gz", inputs)
    nnunet.run("nnunet25d", "predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-d", "971", "-c", "2d", "-f", "0",
               "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_progress_bar")
    assert np.array_equal(read_label(tmp_path / "out" / f"{case}.nii.gz"), read_label(validation / f"{case}.nii.gz"))
    return json.loads((model / "plans.json").read_text())


@pytest.mark.integration
def test_deeplab_cli_train_validate_predict(nnunet, tiny_dataset, tmp_path):
    trainer = "nnUNetTrainer25DDeepLab_2epochs_5iters"
    plans = train_then_predict_validation_case(nnunet, tiny_dataset, trainer, tmp_path)
    configuration = plans["configurations"]["2d"]
    assert configuration["architecture"]["arch_kwargs"]["network_2d"].endswith("DeepLabV3Plus2D")
    assert all(n % 16 == 0 for n in configuration["patch_size"][1:])
    log = next((nnunet.model_folder(tiny_dataset, trainer) / "fold_0").glob("training_log_*.txt")).read_text()
    assert "2.5D: slab of 3 slices" in log


@pytest.mark.integration
def test_deeplab_trainer_switches_deep_supervision_off(nnunet, tiny_dataset, monkeypatch):
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    trainer = nnunet.trainer(tiny_dataset, nnUNetTrainer25DDeepLab, "2d", monkeypatch)
    assert trainer._get_deep_supervision_scales() is None
    assert not isinstance(trainer.loss, DeepSupervisionWrapper)


def test_deeplab_defaults_are_the_papers_dpn_with_separable_aspp():
    from nnunet_25d.architectures.deeplab import DeepLabV3Plus2D

    network = DeepLabV3Plus2D(3, 2)
    assert type(network.network.encoder).__name__ == "DPNEncoder"
    assert type(network.aspp.convs[1][0]).__name__ == "SeparableConv2d"
    project_conv, dropout = network.aspp.project[0], network.aspp.project[3]
    assert project_conv.out_channels == 256 and dropout.p == 0.5
    assert pooling_group_counts(network) == [32]


def test_deeplab_passes_every_constructor_argument_to_smp():
    from nnunet_25d.architectures.deeplab import DeepLabV3Plus2D

    network = DeepLabV3Plus2D(5, 3, encoder_name="resnet18", encoder_output_stride=8, aspp_separable=False,
                              aspp_dropout=0.2, decoder_channels=32, pooling_norm_groups=16)
    assert type(network.network.encoder).__name__ == "ResNetEncoder"
    assert next(network.network.encoder.parameters()).shape[1] == 5, "the slab's slices are the input channels"
    assert network.network.encoder(torch.randn(1, 5, 64, 64))[-1].shape[-1] == 64 // 8
    assert isinstance(network.aspp.convs[1][0], nn.Conv2d) and network.aspp.convs[1][0].dilation == (6, 6)
    assert network.aspp.project[0].out_channels == 32 and network.aspp.project[3].p == 0.2
    assert network(torch.randn(2, 5, 64, 64)).shape == (2, 3, 64, 64)


@pytest.mark.parametrize("groups", [1, 16])
def test_deeplab_pooling_groups_from_one_to_half_the_channels_are_accepted(groups):
    from nnunet_25d.architectures.deeplab import DeepLabV3Plus2D

    network = DeepLabV3Plus2D(3, 2, encoder_name="resnet18", decoder_channels=32, pooling_norm_groups=groups)
    assert pooling_group_counts(network) == [groups]


@pytest.mark.parametrize("groups", [0, 5, 32])
def test_deeplab_pooling_groups_error_names_the_allowed_range(groups):
    from nnunet_25d.architectures.deeplab import DeepLabV3Plus2D

    with pytest.raises(ValueError, match=rf"^pooling_norm_groups must split the 32 decoder channels into groups of "
                                         rf"at least two channels \(a divisor of 32 up to 16\), got {groups}$"):
        DeepLabV3Plus2D(3, 2, encoder_name="resnet18", decoder_channels=32, pooling_norm_groups=groups)


def test_deeplab_deep_supervision_message_is_exact():
    from nnunet_25d.architectures.deeplab import DeepLabV3Plus2D

    with pytest.raises(ValueError, match=r"^DeepLabV3Plus2D has a single output and no deep supervision heads: build "
                                         r"it with deep_supervision=False \(nnUNetTrainer25DDeepLab switches "
                                         r"nnU-Net's deep supervision off\)$"):
        DeepLabV3Plus2D(3, 2, deep_supervision=True, encoder_name="resnet18")
