"""nnUNetTrainer25DUVNet: the multi-scale convolution against a hand computation, the multi-scale U-Net against the
planned PlainConvUNet's cost, the network nnU-Net builds from the derived plans, the CLI flow."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from tests.architectures.test_deeplab import (
    PLANNED_PATCHES,
    assert_slice_depends_on_its_slab_only,
    built_from_plans,
    deep_supervision_shapes,
    one_thread,  # noqa: F401  (autouse fixture)
    planned_plans,
    train_then_predict_validation_case,
)
from torch import nn

from nnunet_25d.architectures.depth_reduction import DepthReduction
from nnunet_25d.architectures.blocks.multi_scale_conv import MultiScaleConv2d, split_channels
from nnunet_25d.architectures.multi_scale_unet import MultiScaleUNet
from nnunet_25d.trainers.registry import TRAINERS
from nnunet_25d.trainers.uv_net_trainer import nnUNetTrainer25DUVNet


def by_hand(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, dilation: int, stride: int) -> np.ndarray:
    """y[o, i, j] = bias[o] + sum_{c, u, v} weight[o, c, u, v] * x[c, s*i + d*(u-1), s*j + d*(v-1)], zero outside."""
    channels, height, width = x.shape
    out = np.zeros((weight.shape[0], (height - 1) // stride + 1, (width - 1) // stride + 1))
    for o in range(weight.shape[0]):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                total = bias[o]
                for c in range(channels):
                    for u in range(3):
                        for v in range(3):
                            y, xx = stride * i + dilation * (u - 1), stride * j + dilation * (v - 1)
                            if 0 <= y < height and 0 <= xx < width:
                                total += weight[o, c, u, v] * x[c, y, xx]
                out[o, i, j] = total
    return out


@pytest.mark.parametrize("stride", [1, 2])
def test_multi_scale_conv_concatenates_dilated_branches_over_split_output_channels(stride):
    torch.manual_seed(0)
    conv = MultiScaleConv2d(2, 5, kernel_size=3, stride=stride, dilations=(1, 2, 3))
    x = torch.randn(1, 2, 9, 8)
    with torch.no_grad():
        y = conv(x)[0].numpy()
    expected = [by_hand(x[0].double().numpy(), branch.weight.detach().double().numpy(),
                        branch.bias.detach().double().numpy(), dilation, stride)
                for branch, dilation in zip(conv.branches, (1, 2, 3))]
    assert [e.shape[0] for e in expected] == [2, 2, 1], "5 output channels split as evenly as possible"
    np.testing.assert_allclose(y, np.concatenate(expected), atol=1e-5)


def test_multi_scale_conv_costs_one_convolution():
    multi_scale, plain = MultiScaleConv2d(32, 64, 3, dilations=(1, 2, 3)), nn.Conv2d(32, 64, 3)
    assert sum(p.numel() for p in multi_scale.parameters()) == sum(p.numel() for p in plain.parameters())
    assert [b.out_channels for b in multi_scale.branches] == [22, 21, 21] == split_channels(64, 3)


def test_multi_scale_conv_with_fewer_channels_than_branches_names_the_limit():
    with pytest.raises(ValueError, match="at most 2 branch dilations"):
        MultiScaleConv2d(4, 2, dilations=(1, 2, 3))


def test_multi_scale_unet_has_the_planned_unets_parameters():
    kwargs = dict(input_channels=4, num_classes=3, n_stages=4, features_per_stage=[8, 16, 32, 32], conv_op=nn.Conv2d,
                  kernel_sizes=[[3, 3]] * 4, strides=[[1, 1], [2, 2], [2, 2], [2, 2]], n_conv_per_stage=[2] * 4,
                  n_conv_per_stage_decoder=[2] * 3, conv_bias=True, norm_op=nn.InstanceNorm2d,
                  norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})
    count = lambda network: sum(p.numel() for p in network.parameters())  # noqa: E731
    assert count(MultiScaleUNet(**kwargs)) == count(PlainConvUNet(**kwargs))
    dilations = {m.dilation for m in MultiScaleUNet(**kwargs).modules() if isinstance(m, nn.Conv2d) and
                 m.kernel_size == (3, 3)}
    assert dilations == {(1, 1), (2, 2), (3, 3)}


def test_multi_scale_unet_refuses_a_3d_plan():
    with pytest.raises(ValueError, match="2d configuration"):
        MultiScaleUNet(1, 2, 2, [4, 8], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]], 1, 1, conv_op=nn.Conv3d)


@pytest.mark.parametrize("patch", PLANNED_PATCHES)
def test_uv_net_deep_supervision_outputs_at_the_planned_strides(patch):
    network, configuration = built_from_plans(nnUNetTrainer25DUVNet, planned_plans(patch), deep_supervision=True)
    shape = np.array([2, *patch])
    with torch.no_grad():
        outputs = network(torch.randn(1, 1, *shape))
    assert [tuple(o.shape) for o in outputs] == deep_supervision_shapes(configuration, shape)
    assert isinstance(network.stem, DepthReduction) and isinstance(network.network_2d, MultiScaleUNet)
    assert configuration.network_arch_init_kwargs["branch_dilations"] == [1, 2, 3]


@pytest.mark.parametrize("slab_size", [3, 5])
def test_uv_net_slice_depends_on_its_slab_only(slab_size):
    network, _ = built_from_plans(TRAINERS[f"nnUNetTrainer25DUVNet_{slab_size}slices"], planned_plans((32, 32)))
    assert_slice_depends_on_its_slab_only(network, (32, 32), k=slab_size // 2)


@pytest.mark.integration
def test_uv_net_cli_train_validate_predict(nnunet, tiny_dataset, tmp_path):
    plans = train_then_predict_validation_case(nnunet, tiny_dataset, "nnUNetTrainer25DUVNet_2epochs_5iters", tmp_path)
    kwargs = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]
    assert plans["configurations"]["2d"]["architecture"]["network_class_name"].endswith("DepthReductionNetwork")
    assert kwargs["network_2d"].endswith("MultiScaleUNet") and kwargs["branch_dilations"] == [1, 2, 3]
