import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_25d.architectures.depth_reduction import DepthReduction, DepthReductionNetwork
from nnunet_25d.architectures.blocks.slab_stack import SlabAsChannels


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


@pytest.mark.parametrize("slab_size", [3, 5, 7])
def test_depth_reduction_sees_every_slice_of_its_slab(slab_size):
    torch.manual_seed(0)
    reduction = DepthReduction(in_channels=1, slab_size=slab_size, features=4).eval()
    slabs = torch.randn(2, 1, slab_size, 8, 8)
    with torch.no_grad():
        base = reduction(slabs)
        for s in range(slab_size):
            changed = slabs.clone()
            changed[0, :, s] += torch.randn(8, 8)
            out = reduction(changed)
            assert not torch.allclose(out[0], base[0], atol=1e-4), f"slice {s} of {slab_size} is ignored"
            assert torch.equal(out[1], base[1]), "slabs of a batch are reduced independently"


def test_one_block_is_a_2d_convolution_over_the_slab_as_channels():
    """The module's own claim: a 3x3x3 valid convolution over 3 slices = a 3x3 2D convolution over 3*C channels
    (channel s*C + c, as SlabAsChannels stacks them), then instance norm and leaky ReLU."""
    torch.manual_seed(0)
    reduction = DepthReduction(in_channels=2, slab_size=3, features=5)
    conv, norm = reduction.blocks[0][0], reduction.blocks[0][1]
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
        slabs = torch.randn(4, 2, 3, 9, 7)
        weight_2d = conv.weight.transpose(1, 2).reshape(5, 6, 3, 3)
        expected = F.conv2d(SlabAsChannels(2, 3)(slabs), weight_2d, conv.bias, padding=1)
        expected = F.leaky_relu(F.instance_norm(expected, weight=norm.weight, bias=norm.bias, eps=1e-5), 1e-2)
        assert torch.allclose(reduction(slabs), expected, atol=1e-5)


def test_depth_reduction_parameters_by_hand():
    """Two blocks for 5 slices (2 -> 6 -> 6 features): 3x3x3 convolutions with bias, affine instance norms."""
    reduction = DepthReduction(in_channels=2, slab_size=5, features=6)
    assert sum(p.numel() for p in reduction.parameters()) == (27 * 2 * 6 + 6) + 2 * 6 + (27 * 6 * 6 + 6) + 2 * 6
    assert reduction.out_channels == 6
    assert all(m.negative_slope == 1e-2 for m in reduction.modules() if isinstance(m, nn.LeakyReLU))


def test_a_one_slice_slab_passes_unchanged():
    reduction = DepthReduction(in_channels=2, slab_size=1, features=6)
    slabs = torch.randn(3, 2, 1, 5, 5)
    assert reduction.out_channels == 2 and torch.equal(reduction(slabs), slabs[:, :, 0])


def test_fusion_network_feeds_the_reduced_features_to_the_2d_network():
    net = small_fusion_network(5)
    assert isinstance(net.stem, DepthReduction) and net.stem.out_channels == 6
    first_2d_conv = next(m for m in net.network_2d.modules() if isinstance(m, nn.Conv2d))
    assert first_2d_conv.in_channels == 6


def test_default_reduction_is_32_features():
    assert DepthReduction(in_channels=1, slab_size=3).out_channels == 32
    net = DepthReductionNetwork(1, 2, 3, network_2d="torch.nn.Identity")
    assert net.stem.out_channels == 32 and net.reduction_features == 32


def test_a_slab_of_the_wrong_depth_is_named():
    with pytest.raises(AssertionError, match=r"^depth reduction left 3 slices$"):
        DepthReduction(in_channels=1, slab_size=3, features=2)(torch.randn(1, 1, 5, 6, 6))
