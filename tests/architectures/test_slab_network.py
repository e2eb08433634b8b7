import pytest
import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_25d.architectures.slab_network import SlabNetwork, in_plane


def small_slab_network(slab_size: int = 3, deep_supervision: bool = False, channels: int = 1,
                       slices_per_forward: int | None = None) -> SlabNetwork:
    torch.manual_seed(0)
    return SlabNetwork(slices_per_forward=slices_per_forward,
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
    from tests.architectures.test_depth_reduction import small_fusion_network
    from tests.trainers.test_morph_mlp_trainer import small_morph_mlp_network

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


def true_slab_logits(net: SlabNetwork, x: torch.Tensor) -> torch.Tensor:
    """Reference: slice z of each volume through the stem and 2D network, from its slab cut out of the
    zero-padded volume by hand."""
    k = net.slab_size // 2
    padded = torch.cat([x.new_zeros((*x.shape[:2], k, *x.shape[3:])), x,
                        x.new_zeros((*x.shape[:2], k, *x.shape[3:]))], dim=2)
    per_slice = [net.network_2d(net.stem(padded[b:b + 1, :, z:z + net.slab_size]))
                 for b in range(x.shape[0]) for z in range(x.shape[2])]
    return torch.cat(per_slice).reshape(x.shape[0], x.shape[2], -1, *x.shape[3:]).transpose(1, 2)


@pytest.mark.parametrize("slab_size", [3, 5])
@pytest.mark.parametrize("slices_per_forward", [None, 1, 4])
def test_every_slice_is_computed_from_its_true_slab(slab_size, slices_per_forward):
    net = small_slab_network(slab_size, slices_per_forward=slices_per_forward)
    x = torch.randn(2, 1, 9, 16, 16)
    x[0, :, :3] = 0  # zero padding of a thinner volume (in front only: nnU-Net centres, tests need not)
    x[1, :, -2:] = 0
    with torch.no_grad():
        assert torch.allclose(net(x), true_slab_logits(net, x), atol=1e-5)


def test_slices_whose_slab_is_all_zero_share_one_pass():
    net = small_slab_network(3, slices_per_forward=2)
    passes = []
    net.network_2d.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
    x = torch.zeros(1, 1, 12, 16, 16)
    x[:, :, 5:7] = torch.randn(2, 16, 16)
    with torch.no_grad():
        net(x)
    assert passes == [2, 2, 1], "4 slices have data in their slab (4..7), 8 share the all-zero slab"


@pytest.mark.parametrize("deep_supervision", [False, True])
def test_interior_mode_computes_only_slices_whose_slab_is_inside_the_patch(deep_supervision):
    net = small_slab_network(5, deep_supervision=deep_supervision)
    x = torch.randn(2, 1, 9, 16, 16)
    passes = []
    net.network_2d.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
    with torch.no_grad():
        every = net(x)
        net.interior_only = True
        interior = net(x)
    every, interior = (every, interior) if deep_supervision else ([every], [interior])
    for full, inner in zip(every, interior):
        assert inner.shape[2] == 5 and torch.allclose(inner, full[:, :, 2:7], atol=1e-6)
    assert passes == [18, 10], "2 patches x 5 interior slices, not 2 x 9"


@pytest.mark.parametrize("deep_supervision", [False, True])
def test_an_all_zero_volume_takes_one_pass_of_the_zero_slab(deep_supervision):
    net = small_slab_network(3, deep_supervision=deep_supervision, slices_per_forward=2)
    passes = []
    net.network_2d.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
    with torch.no_grad():
        outputs = net(torch.zeros(2, 1, 5, 16, 16))
        zero_slab = net.network_2d(net.stem(torch.zeros(1, 1, 3, 16, 16)))
    outputs, zero_slab = (outputs, zero_slab) if deep_supervision else ([outputs], [zero_slab])
    assert passes == [1, 1]
    for output, expected in zip(outputs, zero_slab):
        assert output.shape[:3] == (2, 3, 5)
        assert torch.equal(output, expected[:, :, None].expand_as(output))


def test_slab_axis_2_is_the_axis_0_network_on_the_transposed_volume():
    """Kernels and strides store a 1 at the slab axis; the network is the same 2D network on the other two axes."""
    common = dict(input_channels=1, num_classes=3, slab_size=3, n_stages=2, features_per_stage=[4, 8],
                  conv_op=nn.Conv2d, n_conv_per_stage=[1, 1], n_conv_per_stage_decoder=[1], conv_bias=True,
                  norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU)
    torch.manual_seed(0)
    along_x = SlabNetwork(slab_axis=2, kernel_sizes=[[3, 3, 1]] * 2, strides=[[1, 1, 1], [2, 2, 1]], **common).eval()
    torch.manual_seed(0)
    along_z = SlabNetwork(kernel_sizes=[[1, 3, 3]] * 2, strides=[[1, 1, 1], [1, 2, 2]], **common).eval()
    x = torch.randn(2, 1, 8, 12, 5)  # (B, C, Z, Y, X)
    with torch.no_grad():
        expected = along_z(x.permute(0, 1, 4, 2, 3)).permute(0, 1, 3, 4, 2)
        assert torch.allclose(along_x(x), expected, atol=1e-6)


def test_without_deep_supervision_by_default():
    net = SlabNetwork(1, 2, 3, "torch.nn.Identity")
    assert isinstance(net(torch.randn(1, 1, 4, 5, 6)), torch.Tensor)


def test_unknown_2d_network_is_named():
    with pytest.raises(ImportError, match=r"^2D network class 'no_such_module\.Network' cannot be imported$"):
        SlabNetwork(1, 2, 3, "no_such_module.Network")


def test_initialize_is_the_2d_networks_own():
    """nnU-Net calls network.apply(network.initialize): PlainConvUNet's He initialisation of every conv."""
    net, reference = small_slab_network(), small_slab_network()
    before = [p.clone() for p in net.parameters()]
    torch.manual_seed(1)
    net.apply(net.initialize)
    torch.manual_seed(1)
    reference.network_2d.apply(InitWeights_He(1e-2))
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), reference.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(net.parameters(), before))
    identity = SlabNetwork(1, 2, 3, "torch.nn.Identity")
    identity.apply(identity.initialize)  # a 2D network without its own initialisation is left as it is
