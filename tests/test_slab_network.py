import pytest
import torch
from torch import nn

from nnunet_25d.architectures.slab_network import SlabNetwork, in_plane


def small_slab_network(slab_size: int = 3, deep_supervision: bool = False, channels: int = 1) -> SlabNetwork:
    torch.manual_seed(0)
    return SlabNetwork(
        input_channels=channels, num_classes=3, slab_size=slab_size, n_stages=3, features_per_stage=[4, 8, 16],
        conv_op=nn.Conv2d, kernel_sizes=[[1, 3, 3]] * 3, strides=[[1, 1, 1], [1, 2, 2], [1, 2, 2]],
        n_conv_per_stage=[1, 1, 1], n_conv_per_stage_decoder=[1, 1], conv_bias=True,
        norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=deep_supervision,
    ).eval()


def test_output_keeps_every_slice_and_deep_supervision_is_highest_resolution_first():
    net = small_slab_network(deep_supervision=True, channels=2)
    outputs = net(torch.randn(2, 2, 5, 16, 16))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 5, 16, 16), (2, 3, 5, 8, 8)]


def test_first_layer_sees_slab_times_channels():
    net = small_slab_network(slab_size=5, channels=2)
    first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 10


@pytest.mark.parametrize("slab_size", [3, 5])
@pytest.mark.parametrize("builder", ["slab", "fusion", "morph_mlp"])
def test_slice_depends_on_neighbours_within_slab_only(slab_size, builder):
    from test_depth_reduction import small_fusion_network
    from test_morph_mlp_trainer import small_morph_mlp_network

    k = slab_size // 2
    builders = {"slab": small_slab_network, "fusion": small_fusion_network, "morph_mlp": small_morph_mlp_network}
    net = builders[builder](slab_size)
    size = 32 if builder == "morph_mlp" else 16
    x = torch.randn(1, 1, 9, size, size)
    z = 4
    base = net(x)[:, :, z]
    for offset in range(-4, 5):
        changed = x.clone()
        changed[:, :, z + offset] += torch.randn(size, size)
        moved = not torch.allclose(net(changed)[:, :, z], base)
        assert moved == (abs(offset) <= k), f"offset {offset}"


def test_slices_of_one_patch_do_not_share_normalisation_statistics():
    net = small_slab_network(slab_size=1)
    x = torch.randn(1, 1, 4, 16, 16)
    changed = x.clone()
    changed[:, :, 3] *= 10
    assert torch.allclose(net(x)[:, :, 0], net(changed)[:, :, 0])


def test_slice_axis_must_not_be_strided():
    with pytest.raises(ValueError, match="slab axis"):
        in_plane([[1, 1, 1], [2, 2, 2]])
    assert in_plane([[1, 3, 3], [3, 3]]) == [[3, 3], [3, 3]]


def test_rejects_2d_input_with_shape_in_message():
    with pytest.raises(ValueError, match=r"\(B, C, D, H, W\)"):
        small_slab_network()(torch.randn(1, 1, 16, 16))
