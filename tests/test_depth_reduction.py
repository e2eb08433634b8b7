import pytest
import torch
from torch import nn

from nnunet_25d.architectures.depth_reduction import DepthReduction, DepthReductionNetwork


def small_fusion_network(slab_size: int, deep_supervision: bool = False) -> DepthReductionNetwork:
    torch.manual_seed(0)
    return DepthReductionNetwork(
        input_channels=1, num_classes=3, slab_size=slab_size, reduction_features=6, n_stages=3,
        features_per_stage=[4, 8, 16], conv_op=nn.Conv2d, kernel_sizes=[[1, 3, 3]] * 3,
        strides=[[1, 1, 1], [1, 2, 2], [1, 2, 2]], n_conv_per_stage=[1, 1, 1], n_conv_per_stage_decoder=[1, 1],
        conv_bias=True, norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=deep_supervision,
    ).eval()


@pytest.mark.parametrize("slab_size, blocks", [(3, 1), (5, 2), (7, 3)])
def test_depth_reduction_stacks_one_valid_block_per_neighbour_pair(slab_size, blocks):
    reduction = DepthReduction(in_channels=2, slab_size=slab_size, features=5)
    convs = [m for m in reduction.modules() if isinstance(m, nn.Conv3d)]
    assert len(convs) == blocks and all(c.padding == (0, 1, 1) for c in convs)
    assert reduction(torch.randn(4, 2, slab_size, 8, 8)).shape == (4, 5, 8, 8)


@pytest.mark.parametrize("shape", [(1, 1, 7, 16, 16), (2, 1, 4, 32, 24)])
def test_fusion_network_shapes(shape):
    outputs = small_fusion_network(5, deep_supervision=True)(torch.randn(*shape))
    b, _, d, h, w = shape
    assert [tuple(o.shape) for o in outputs] == [(b, 3, d, h, w), (b, 3, d, h // 2, w // 2)]
