"""Project & Excite, the PE + spatial-attention U-Net (Mei et al.), its derived plans, and the multi-scale ensemble."""
from __future__ import annotations

import copy
import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from tests.conftest import TINY_ID
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from scipy import ndimage
from torch import nn

from nnunet_25d.architectures.pe_attention_unet import AttentionGate, PEAttentionUNet
from nnunet_25d.architectures.blocks.pe_block import ProjectExcite
from nnunet_25d.planning.configuration import SLAB_KEY, ConfigurationError
from nnunet_25d.trainers.pe_attention_trainer import PE_ATTENTION_NETWORK, derive_pe_attention_plans

PE_TRAINER = "nnUNetTrainer25DPEAttention_2epochs_5iters"


def test_project_excite_follows_its_equation():
    """Squeeze along each axis (mean over the other two), project (broadcast sum), excite (1x1x1 convs C -> C/r ->
    C, ReLU, sigmoid), multiply — computed here with explicit loops over the voxels."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 2, 3, 5)
    block = ProjectExcite(nn.Conv3d, 4, reduction=2)
    out = block(x).detach().numpy()[0]
    v = x.numpy()[0].astype(np.float64)
    c_, d_, h_, w_ = v.shape
    w1 = block.reduce.weight.detach().numpy()[:, :, 0, 0, 0].astype(np.float64)
    b1 = block.reduce.bias.detach().numpy().astype(np.float64)
    w2 = block.expand.weight.detach().numpy()[:, :, 0, 0, 0].astype(np.float64)
    b2 = block.expand.bias.detach().numpy().astype(np.float64)
    assert w1.shape == (2, 4) and w2.shape == (4, 2), "reduction ratio 2: 4 -> 2 -> 4 channels"
    expected = np.zeros_like(v)
    for d in range(d_):
        for h in range(h_):
            for w in range(w_):
                z = np.array([v[c, d].mean() + v[c, :, h].mean() + v[c, :, :, w].mean() for c in range(c_)])
                hidden = np.maximum(w1 @ z + b1, 0)
                gate = 1 / (1 + np.exp(-(w2 @ hidden + b2)))
                expected[:, d, h, w] = v[:, d, h, w] * gate
    assert np.allclose(out, expected, atol=1e-5)


def test_project_excite_gate_varies_along_every_axis():
    torch.manual_seed(1)
    gate = ProjectExcite(nn.Conv3d, 4, reduction=1).gate(torch.randn(1, 4, 3, 4, 5))[0, 0]
    for axis in range(3):
        assert gate.std(dim=axis).max() > 1e-4, f"not constant along axis {axis} (unlike squeeze-and-excitation)"


def toy_plans(patch_2d: list[int], median_depth: int, batch_2d: int = 12, base_features: int = 4) -> dict:
    """nnU-Net-shaped plans with a 2d and a 3d_fullres configuration (small features so the tests are fast)."""
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"features_per_stage": [base_features, 2 * base_features]}, "_kw_requires_import": []}
    return {
        "dataset_name": "Dataset999_Toy", "plans_name": "nnUNetPlans",
        "original_median_shape_after_transp": [median_depth, 256, 256],
        "original_median_spacing_after_transp": [4.0, 0.8, 0.8],
        "configurations": {
            "2d": {"data_identifier": "nnUNetPlans_2d", "patch_size": patch_2d, "batch_size": batch_2d,
                   "spacing": [0.8, 0.8], "architecture": copy.deepcopy(arch), "batch_dice": True},
            "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres", "patch_size": [24, 96, 96], "batch_size": 2,
                           "spacing": [4.0, 0.8, 0.8], "median_image_size_in_voxels": [median_depth, 256, 256],
                           "architecture": copy.deepcopy(arch), "batch_dice": False},
        },
    }


def deep_supervision_scales(configuration: dict) -> list[list[float]]:
    """nnU-Net's own rule (nnUNetTrainer._get_deep_supervision_scales) for this configuration."""
    trainer = SimpleNamespace(enable_deep_supervision=True,
                              configuration_manager=PlansManager({"configurations": {"c": configuration}})
                              .get_configuration("c"))
    return [list(s) for s in nnUNetTrainer._get_deep_supervision_scales(trainer)]


def network_for(configuration: dict, deep_supervision: bool = True) -> nn.Module:
    manager = PlansManager({"configurations": {"c": configuration}}).get_configuration("c")
    return get_network_from_plans(manager.network_arch_class_name, manager.network_arch_init_kwargs,
                                  manager.network_arch_init_kwargs_req_import, 1, 3, allow_init=True,
                                  deep_supervision=deep_supervision)


@pytest.mark.parametrize("configuration, patch_2d, median_depth, expected_patch", [
    ("2d", [64, 64], 40, [16, 64, 64]),  # the paper's 16 x 64 x 64
    ("2d", [48, 80], 40, [16, 48, 80]),
    ("2d", [100, 60], 11, [10, 112, 64]),  # thin volumes: the median depth, even; in-plane rounded up to 16
    ("3d_fullres", [64, 64], 40, [16, 96, 96]),
])
def test_planned_patches_run_with_nnunets_deep_supervision(configuration, patch_2d, median_depth, expected_patch):
    derived = derive_pe_attention_plans(toy_plans(patch_2d, median_depth), configuration)["configurations"]
    config = derived[configuration]
    assert config["patch_size"] == expected_patch
    with torch.no_grad():
        outputs = network_for(config)(torch.zeros(1, 1, *expected_patch))
        single = network_for(config, deep_supervision=False)(torch.zeros(1, 1, *expected_patch))
    scales = deep_supervision_scales(config)
    assert len(outputs) == len(scales) == 4
    for output, scale in zip(outputs, scales):
        assert list(output.shape) == [1, 3, *(round(p * s) for p, s in zip(expected_patch, scale))]
    assert single.shape == outputs[0].shape


def test_derived_configuration_keeps_the_data_and_is_idempotent():
    plans = toy_plans([64, 64], 40, batch_2d=40)
    derived = derive_pe_attention_plans(plans, "2d")
    config = derived["configurations"]["2d"]
    source = plans["configurations"]["2d"]
    assert config["data_identifier"] == source["data_identifier"] and config["spacing"] == source["spacing"]
    assert config["batch_size"] == 40 * 64 * 64 // (16 * 64 * 64), "about the 2d step's voxels"
    assert config["architecture"]["network_class_name"] == PE_ATTENTION_NETWORK
    assert config["architecture"]["arch_kwargs"]["features_per_stage"] == [4, 8, 16, 32, 64]
    assert config[SLAB_KEY]["network"] == PE_ATTENTION_NETWORK
    assert derive_pe_attention_plans(derived, "2d") == derived
    with pytest.raises(ConfigurationError, match="already derived"):
        derive_pe_attention_plans(derived, "2d", depth=8)
    assert derive_pe_attention_plans(plans, "2d", gpus=8)["configurations"]["2d"]["batch_size"] == 8


def test_nine_blocks_pe_before_all_but_the_first_attention_before_bottom_and_decoder_pe():
    config = derive_pe_attention_plans(toy_plans([64, 64], 40), "2d")["configurations"]["2d"]
    net = network_for(config)
    assert isinstance(net, PEAttentionUNet)
    blocks = [m for m in net.modules() if isinstance(m, StackedConvBlocks)]
    assert len(blocks) == 9
    stages = net.encoder.stages
    assert not any(isinstance(m, (ProjectExcite, AttentionGate)) for m in stages[0].modules())
    for s in range(1, len(stages)):
        kinds = [type(m) for m in stages[s]]
        expected = [nn.MaxPool3d, ProjectExcite, StackedConvBlocks]
        if s == len(stages) - 1:
            expected.insert(1, AttentionGate)
        assert kinds == expected, f"encoder stage {s}"
        assert stages[s][-2].reduce.in_channels == stages[s][-1].convs[0].conv.in_channels
    for stage in net.decoder.stages:
        assert [type(m) for m in stage] == [AttentionGate, ProjectExcite, StackedConvBlocks]
        assert stage[1].reduce.in_channels == stage[2].convs[0].conv.in_channels  # upsampled + skip channels
        assert list(stage[0].attention.squeeze.kernel_size)[0] == 1, "attention convolutions stay in-plane"


def test_attention_and_pe_change_what_the_blocks_see():
    torch.manual_seed(2)
    config = derive_pe_attention_plans(toy_plans([32, 32], 8), "2d")["configurations"]["2d"]
    net = network_for(config, deep_supervision=False).eval()
    x = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        before = net(x)
    for module in net.modules():
        if isinstance(module, ProjectExcite):
            nn.init.constant_(module.expand.bias, 50.0)  # gate ~ 1 everywhere: PE becomes the identity
        if isinstance(module, AttentionGate):
            nn.init.constant_(module.attention.score.bias, -50.0)  # attention ~ 0: x * (1 + 0)
    with torch.no_grad():
        assert not torch.allclose(net(x), before)


# --- through nnU-Net's command line ----------------------------------------------------------------------------------

def read_label(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def trained_pe_model(nnunet, tiny_dataset) -> Path:
    """The PE network trained on 2d (2 x 5 steps, fold 0, validation with --npz)."""
    nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "0", "-tr", PE_TRAINER, "-device", "cpu", "--npz", training=True)
    return nnunet.model_folder(tiny_dataset, PE_TRAINER, "2d")


@pytest.mark.integration
def test_trains_and_predicts_like_its_validation(nnunet, tiny_dataset, trained_pe_model, tmp_path):
    config = json.loads((trained_pe_model / "plans.json").read_text())["configurations"]["2d"]
    assert config["architecture"]["network_class_name"] == PE_ATTENTION_NETWORK
    assert config["patch_size"] == [10, 32, 32], "the tiny volumes' 10 slices of the 32 x 32 2d patch"
    validation = trained_pe_model / "fold_0" / "validation"
    case = sorted(validation.glob("*.nii.gz"))[0].name.replace(".nii.gz", "")
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(nnunet.raw / tiny_dataset / "imagesTr" / f"{case}_0000.nii.gz", inputs)
    nnunet.run("nnUNetv2_predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-d", str(TINY_ID), "-c", "2d",
               "-f", "0", "-tr", PE_TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1")
    assert np.array_equal(read_label(tmp_path / "out" / f"{case}.nii.gz"), read_label(validation / f"{case}.nii.gz"))


def second_member(model: Path, plans: str) -> Path:
    """A second ensemble member without a second training: the model's CV outputs with every probability map
    shifted by 2 voxels in x, filed as trainer ``ShiftedMember`` with other plans (so ``TRAINER:CONFIG:PLANS``)."""
    member = model.parent / f"ShiftedMember__{plans}__2d"
    shutil.copytree(model, member, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.pth"))
    for npz in (member / "fold_0" / "validation").glob("*.npz"):
        probabilities = np.load(npz)["probabilities"]
        np.savez_compressed(npz, probabilities=np.roll(probabilities, 2, axis=-1))
    return member


@pytest.mark.integration
def test_multi_scale_ensemble_keeps_each_class_largest_component(nnunet, tiny_dataset, trained_pe_model):
    """The README's multi-scale command on two members: softmax averaged, then every class's largest component."""
    members = [trained_pe_model, second_member(trained_pe_model, "nnUNetPlans_shifted")]
    result = nnunet.run("nnunet25d", "ensemble-cv", "-d", str(TINY_ID), "-f", "0", "--largest-component", "always",
                        "--models", f"{PE_TRAINER}:2d", "ShiftedMember:2d:nnUNetPlans_shifted")
    folder = Path(result.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    assert json.loads((folder / "members.json").read_text())["models"] == [m.name for m in members]
    functions, kwargs = pickle.loads((folder / "postprocessing.pkl").read_bytes())
    assert [f.__name__ for f in functions] == ["remove_all_but_largest_component_from_segmentation"] * 2
    assert kwargs == [{"labels_or_regions": 1}, {"labels_or_regions": 2}]
    for npz in (trained_pe_model / "fold_0" / "validation").glob("*.npz"):
        mean = np.mean([np.load(m / "fold_0" / "validation" / npz.name)["probabilities"].astype(np.float64)
                        for m in members], axis=0)
        fused = read_label(folder / npz.name.replace(".npz", ".nii.gz"))
        assert (mean.argmax(0) == fused).mean() > 0.999
        expected = fused.copy()
        for label in (1, 2):  # keep the largest 26-connected component(s), ties all kept (scipy, not nnU-Net)
            components, n = ndimage.label(fused == label, structure=np.ones((3, 3, 3)))
            if n > 1:
                sizes = np.bincount(components.ravel())[1:]
                largest = 1 + np.flatnonzero(sizes == sizes.max())
                expected[(components > 0) & ~np.isin(components, largest)] = 0
        assert np.array_equal(read_label(folder / "postprocessed" / npz.name.replace(".npz", ".nii.gz")), expected)
    assert json.loads((folder / "postprocessed" / "summary.json").read_text())["metric_per_case"]
