import pytest
import torch
from torch import nn

from nnunet_25d.anisotropy import anisotropic_topology
from nnunet_25d.architectures.aniso_unet import AnisoUNet
from nnunet_25d.architectures.spatial_attention import SpatialAttention


@pytest.mark.parametrize(
    "spacing, patch, switch",
    [
        ((4.0, 0.8, 0.8), (20, 64, 64), 2),  # 0.8 -> 1.6 -> 3.2 mm in-plane: 3D from the third stage
        ((1.0, 1.0, 1.0), (64, 64, 64), 0),  # isotropic: a plain 3D U-Net
        ((3.0, 1.0, 1.0), (32, 96, 96), 1),
        ((5.0, 0.5, 0.5), (8, 128, 128), 3),
        ((40.0, 0.5, 0.5), (6, 128, 128), 6),  # never matches within 5 poolings: in-plane only
    ],
)
def test_switch_stage_follows_the_spacing(spacing, patch, switch):
    topology = anisotropic_topology(list(spacing), list(patch))
    assert topology.switch_stage == switch
    for kernel, stride in zip(topology.kernel_sizes, topology.strides):
        if kernel[0] == 1:
            assert stride[0] == 1, "in-plane stages never pool along the slices"
    assert len(topology.kernel_sizes) == len(topology.strides)


def test_feature_maps_never_pool_below_the_minimum():
    topology = anisotropic_topology([1.0, 1.0, 1.0], [8, 64, 64])
    depth = 8
    for stride in topology.strides:
        depth //= stride[0]
    assert depth >= 4


def test_bad_dimensions_are_refused():
    with pytest.raises(ValueError, match="3D spacing"):
        anisotropic_topology([1.0, 1.0], [64, 64])


def aniso_net(attention: bool, topology) -> AnisoUNet:
    torch.manual_seed(0)
    n = len(topology.kernel_sizes)
    return AnisoUNet(input_channels=1, n_stages=n, features_per_stage=[4 * 2 ** i for i in range(n)],
                     conv_op=nn.Conv3d, kernel_sizes=topology.kernel_sizes, strides=topology.strides,
                     n_conv_per_stage=[1] * n, num_classes=3, n_conv_per_stage_decoder=[1] * (n - 1),
                     conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                     nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True,
                     attention=attention).eval()


@pytest.mark.parametrize("spacing, patch", [((4.0, 0.8, 0.8), (8, 32, 32)), ((1.0, 1.0, 1.0), (16, 16, 16))])
def test_aniso_unet_shapes(spacing, patch):
    topology = anisotropic_topology(list(spacing), list(patch), max_stages=4)
    outputs = aniso_net(True, topology)(torch.randn(2, 1, *patch))
    assert tuple(outputs[0].shape) == (2, 3, *patch)
    assert len(outputs) == len(topology.kernel_sizes) - 1


def test_attention_is_not_a_no_op():
    topology = anisotropic_topology([4.0, 0.8, 0.8], [8, 32, 32], max_stages=4)
    with_attention, without = aniso_net(True, topology), aniso_net(False, topology)
    assert sum(isinstance(m, SpatialAttention) for m in with_attention.modules()) == len(topology.kernel_sizes) - 1
    assert not any(isinstance(m, SpatialAttention) for m in without.modules())
    x = torch.randn(1, 1, 8, 32, 32)
    attention = next(m for m in with_attention.modules() if isinstance(m, SpatialAttention))
    features = torch.randn(1, attention.squeeze.in_channels, 8, 32, 32)
    weights = attention.attention_map(features)
    assert weights.shape == (1, 1, 8, 32, 32) and weights.std() > 0, "one weight per voxel, varying in space"
    assert torch.allclose(attention(features), features * (1 + weights))
    assert not torch.allclose(with_attention(x)[0], without(x)[0])


def test_slice_z_depends_on_slice_z_plus_one():
    topology = anisotropic_topology([4.0, 0.8, 0.8], [8, 32, 32], max_stages=4)
    net = aniso_net(True, topology)
    x = torch.randn(1, 1, 8, 32, 32)
    changed = x.clone()
    changed[:, :, 4] += 1.0
    assert not torch.allclose(net(x)[0][:, :, 3], net(changed)[0][:, :, 3])
