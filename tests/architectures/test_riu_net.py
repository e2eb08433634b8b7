"""RIU-Net: the authors' block and network (``net/ince5.py``) written out — branch widths and kernels, norms, the
1x1 shortcut, the stage layout, the parameter count by hand (the authors' own 5,267,810) —, the factorised ablation's
blocks and budget, the networks nnU-Net builds from the derived plans, an earlier version's checkpoint refused, the
CLI flow."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from tests.architectures.test_deeplab import (
    PLANNED_PATCHES,
    assert_slice_depends_on_its_slab_only,
    built_from_plans,
    deep_supervision_shapes,
    impulse_support,
    one_thread,  # noqa: F401  (autouse fixture)
    planned_plans,
    train_then_predict_validation_case,
)
from torch import nn

from nnunet_25d.architectures.blocks.inception_residual import InceptionResidualBlock
from nnunet_25d.architectures.blocks.residual_inception import ResidualInceptionBlock
from nnunet_25d.architectures.checkpoints import EarlierArchitectureError, check_same_architecture
from nnunet_25d.architectures.riu_net import RIUNet, RIUNetReference
from nnunet_25d.trainers.registry import TRAINERS
from nnunet_25d.trainers.riu_net_trainer import nnUNetTrainer25DRIUNet, nnUNetTrainer25DRIUNet_Factorised
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D


def square(radius: int) -> set[tuple[int, int]]:
    return {(a, b) for a in range(-radius, radius + 1) for b in range(-radius, radius + 1)}


def test_branches_see_1x1_kxk_and_two_stacked_kxk_windows():
    """Without norm and non-linearity each branch is linear: its impulse response covers exactly its receptive
    field (InceptionV3's factorised 3x3 = 1x3 then 3x1; two of them = 5x5; the pooling branch 3x3)."""
    torch.manual_seed(0)
    block = ResidualInceptionBlock(2, 8, 3)
    for branch in block.branches:
        for conv in branch.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.uniform_(conv.weight, 0.1, 1.0)  # positive weights: no accidental cancellation
    supports = [impulse_support(branch) for branch in block.branches]
    assert supports == [square(0), square(1), square(2), square(1)]
    factorised = [m.kernel_size for m in block.branches[2].modules() if isinstance(m, nn.Conv2d)]
    assert factorised == [(1, 1), (1, 3), (3, 1), (1, 3), (3, 1)]


def test_output_is_the_concatenated_branches_plus_the_shortcut():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 10)
    same = ResidualInceptionBlock(8, 8, 3, nonlin=nn.ReLU)
    projected = ResidualInceptionBlock(4, 8, 3, nonlin=nn.ReLU)
    with torch.no_grad():
        branches = torch.cat([b(x) for b in same.branches], 1)
        torch.testing.assert_close(same(x), torch.relu(branches + x))
        x4 = x[:, :4]
        branches = torch.cat([b(x4) for b in projected.branches], 1)
        torch.testing.assert_close(projected(x4), torch.relu(branches + projected.shortcut(x4)))
    assert isinstance(same.shortcut, nn.Identity) and isinstance(projected.shortcut[0], nn.Conv2d)
    assert [b[-1].out_channels if isinstance(b[-1], nn.Conv2d) else b[-1][0].out_channels
            for b in same.branches] == [2, 2, 2, 2]


@pytest.mark.parametrize("patch", [(64, 64), (192, 160), (512, 512)])
def test_the_factorised_ablation_holds_about_a_third_of_the_planned_unets_parameters(patch):
    """With nnU-Net's feature counts (32, doubling, at most 512) and planned stages: 33-37 %."""
    plans = planned_plans(patch)
    kwargs = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]
    kwargs["features_per_stage"] = [min(32 * 2 ** i, 512) for i in range(kwargs["n_stages"])]
    count = lambda network: sum(p.numel() for p in network.parameters())  # noqa: E731
    riu_net, _ = built_from_plans(nnUNetTrainer25DRIUNet_Factorised, plans)
    unet, _ = built_from_plans(nnUNetTrainer25D, plans)
    assert 0.30 < count(riu_net) / count(unet) < 0.40


@pytest.mark.parametrize("patch", PLANNED_PATCHES)
def test_the_factorised_ablation_outputs_at_the_planned_strides(patch):
    network, configuration = built_from_plans(nnUNetTrainer25DRIUNet_Factorised, planned_plans(patch),
                                              deep_supervision=True)
    shape = np.array([2, *patch])
    with torch.no_grad():
        outputs = network(torch.randn(1, 1, *shape))
    assert [tuple(o.shape) for o in outputs] == deep_supervision_shapes(configuration, shape)
    assert isinstance(network.network_2d, RIUNet)
    blocks = [m for m in network.network_2d.encoder.modules() if isinstance(m, ResidualInceptionBlock)]
    assert len(blocks) == 2 * len(configuration.pool_op_kernel_sizes), "one block per planned convolution"


@pytest.mark.parametrize("trainer", [nnUNetTrainer25DRIUNet, nnUNetTrainer25DRIUNet_Factorised])
def test_gradients_reach_every_parameter(trainer):
    network, _ = built_from_plans(trainer, planned_plans((32, 32)), deep_supervision=True)
    network.train()
    network.interior_only = True
    outputs = network(torch.randn(2, 1, 3, 32, 32))
    sum(o.square().mean() for o in outputs).backward()
    silent = [name for name, p in network.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


@pytest.mark.parametrize("name", ["nnUNetTrainer25DRIUNet_3slices", "nnUNetTrainer25DRIUNet_5slices",
                                  "nnUNetTrainer25DRIUNet_Factorised_5slices"])
def test_riu_net_slice_depends_on_its_slab_only(name):
    network, _ = built_from_plans(TRAINERS[name], planned_plans((32, 32)))
    k = int(name.split("_")[-1][0]) // 2
    assert_slice_depends_on_its_slab_only(network, (32, 32), k=k)


def test_riu_net_refuses_a_3d_plan():
    with pytest.raises(ValueError, match="2d configuration"):
        RIUNet(1, 2, 2, [4, 8], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]], 1, 1, conv_op=nn.Conv3d)
    with pytest.raises(ValueError, match="^RIUNetReference is a 2D network .*2d configuration$"):
        RIUNetReference(1, 2, 2, [4, 8], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]], conv_op=nn.Conv3d)


@pytest.mark.integration
def test_riu_net_cli_train_validate_predict(nnunet, tiny_dataset, tmp_path):
    """Train, validate and predict through nnU-Net's commands; then the checkpoint of the factorised ablation, put
    where the authors' network would continue (--c), is refused in one line naming the retrain."""
    trainer = "nnUNetTrainer25DRIUNet_2epochs_5iters"
    plans = train_then_predict_validation_case(nnunet, tiny_dataset, trainer, tmp_path)
    kwargs = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]
    assert kwargs["network_2d"].endswith("RIUNetReference") and kwargs["slab_size"] == 3
    earlier = "nnUNetTrainer25DRIUNet_Factorised_2epochs_5iters"
    nnunet.run("nnUNetv2_train", "971", "2d", "0", "-tr", earlier, "-device", "cpu", training=True)
    fold = nnunet.model_folder(tiny_dataset, trainer) / "fold_0"
    shutil.copy(nnunet.model_folder(tiny_dataset, earlier) / "fold_0" / "checkpoint_final.pth",
                fold / "checkpoint_final.pth")
    refused = nnunet.run("nnUNetv2_train", "971", "2d", "0", "-tr", trainer, "-device", "cpu", "--c", check=False,
                         training=True)
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("this checkpoint holds an earlier version of nnUNetTrainer25DRIUNet_2epochs_5iters's "
                           "network") and "retrain it" in last and "Traceback" not in refused.stderr


# --- the authors' network (net/ince5.py) written out ---------------------------------------------------------------

def layer_kinds(module: nn.Module) -> list[str]:
    """The layers of a branch in order: 'conv1x1', 'conv3x3', 'bn', 'relu'."""
    kinds = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None, "branch convolutions have no bias (a norm follows)"
            kinds.append(f"conv{m.kernel_size[0]}x{m.kernel_size[1]}")
        elif isinstance(m, nn.BatchNorm2d):
            kinds.append("bn")
        elif isinstance(m, nn.ReLU):
            kinds.append("relu")
    return kinds


def test_the_authors_block_has_four_branches_of_a_quarter_each_ending_in_a_norm():
    block = InceptionResidualBlock(24, 32)
    one, three = ["conv1x1", "bn"], ["conv3x3", "bn"]
    assert [layer_kinds(b) for b in block.branches] == [
        one,
        one + ["relu"] + three,
        one + ["relu"] + three + ["relu"] + three,
        one + ["relu"] + three + ["relu"] + three + ["relu"] + three,
    ]
    assert [[m.out_channels for m in b.modules() if isinstance(m, nn.Conv2d)] for b in block.branches] == \
        [[8], [8, 8], [8, 8, 8], [8, 8, 8, 8]]
    assert [next(iter(b)).in_channels for b in block.branches] == [24] * 4
    assert isinstance(block.shortcut, nn.Conv2d) and block.shortcut.kernel_size == (1, 1)
    assert block.shortcut.bias is None and (block.shortcut.in_channels, block.shortcut.out_channels) == (24, 32)
    assert isinstance(InceptionResidualBlock(32, 32).shortcut, nn.Conv2d), "a 1x1 shortcut also at equal widths"
    assert not any(isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) for m in block.modules()), "no pooling branch"


def test_the_authors_block_is_relu_of_the_branches_plus_the_shortcut():
    torch.manual_seed(0)
    block = InceptionResidualBlock(8, 16).eval()
    x = torch.randn(2, 8, 10, 12)
    with torch.no_grad():
        expected = torch.relu(torch.cat([b(x) for b in block.branches], 1) + block.shortcut(x))
        torch.testing.assert_close(block(x), expected)
        assert (torch.cat([b(x) for b in block.branches], 1) < 0).any(), "branches end without an activation"


@pytest.mark.parametrize("c_in, c", [(32, 32), (32, 64), (512, 256), (12, 8)])
def test_the_authors_block_parameter_count_by_hand(c_in, c):
    """Shortcut and four 1x1 convolutions: C_in C each (C/4 per branch); six 3x3 convolutions of q = C/4: 9 q^2
    each; ten BatchNorms of q channels: 2 q each."""
    q = c // 4
    by_hand = c_in * c + 4 * c_in * q + 6 * 9 * q * q + 10 * 2 * q
    assert sum(p.numel() for p in InceptionResidualBlock(c_in, c).parameters()) == by_hand


def test_the_authors_block_needs_four_equal_branches():
    with pytest.raises(ValueError, match="splits its 30 output channels into 4 equal branches"):
        InceptionResidualBlock(8, 30)


def authors_network(**overrides) -> RIUNetReference:
    kwargs = dict(input_channels=1, num_classes=2, n_stages=5, features_per_stage=[32, 64, 128, 256, 512],
                  kernel_sizes=[[3, 3]] * 5, strides=[[1, 1]] + [[2, 2]] * 4)
    return RIUNetReference(**{**kwargs, **overrides})


def test_the_authors_network_has_their_stage_layout():
    net = authors_network()
    stem = list(net.encoder[0])
    assert [type(m) for m in stem] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, InceptionResidualBlock]
    assert stem[0].kernel_size == (3, 3) and stem[0].bias is not None and stem[0].out_channels == 32
    widths = [(32, 32), (32, 64), (64, 128), (128, 256)]
    blocks = [stage[-1] for stage in net.encoder[:4]]
    assert [(b.shortcut.in_channels, b.shortcut.out_channels) for b in blocks] == widths
    for stage in net.encoder[1:]:
        assert isinstance(stage[0], nn.MaxPool2d) and stage[0].kernel_size == (2, 2)
    bridge = net.encoder[4][1]
    assert [type(m) for m in bridge] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert [(m.in_channels, m.out_channels) for m in bridge if isinstance(m, nn.Conv2d)] == [(256, 512), (512, 512)]
    assert [(u.in_channels, u.out_channels, u.kernel_size) for u in net.decoder.upsampling] == \
        [(512, 256, (2, 2)), (256, 128, (2, 2)), (128, 64, (2, 2)), (64, 32, (2, 2))]
    assert [(b.shortcut.in_channels, b.shortcut.out_channels) for b in net.decoder.stages] == \
        [(512, 256), (256, 128), (128, 64), (64, 32)]
    assert sum(isinstance(m, InceptionResidualBlock) for m in net.modules()) == 8, "one block per level"
    assert not any(isinstance(m, (nn.InstanceNorm2d, nn.LeakyReLU)) for m in net.modules())


def test_the_authors_network_has_their_parameter_count():
    """ince5.py's own count (torchsummary, 1 input channel, 2 classes): 5,267,810. The decoder's 1x1 layers for
    nnU-Net's deep supervision are extra: without it only the last one is used."""
    net = authors_network()
    total = sum(p.numel() for p in net.parameters())
    spare = sum(p.numel() for layer in net.decoder.seg_layers[:-1] for p in layer.parameters())
    assert total - spare == 5_267_810
    stem = 1 * 32 * 9 + 32 + 2 * 32
    block = lambda c_in, c: 2 * c_in * c + 54 * (c // 4) ** 2 + 20 * (c // 4)  # noqa: E731
    bridge = 256 * 512 * 9 + 512 + 2 * 512 + 512 * 512 * 9 + 512 + 2 * 512
    up = sum(c_in * c * 4 + c for c_in, c in [(512, 256), (256, 128), (128, 64), (64, 32)])
    by_hand = stem + block(32, 32) + block(32, 64) + block(64, 128) + block(128, 256) + bridge + up + \
        block(512, 256) + block(256, 128) + block(128, 64) + block(64, 32) + 32 * 2 + 2
    assert by_hand == 5_267_810


def test_the_authors_network_on_nnunet_plans_takes_at_most_five_levels_and_the_plans_norm_on_request():
    eight = authors_network(n_stages=8, features_per_stage=[32, 64, 128, 256, 512, 512, 512, 512],
                            kernel_sizes=[[3, 3]] * 8, strides=[[1, 1]] + [[2, 2]] * 7)
    assert eight.levels == 5 and eight.features == [32, 64, 128, 256, 512]
    three = authors_network(n_stages=3, features_per_stage=[8, 16, 32], strides=[[1, 1], [1, 2], [2, 2]],
                            deep_supervision=True)
    assert three.levels == 3 and three.encoder[1][0].kernel_size == (1, 2)
    assert [tuple(o.shape) for o in three(torch.randn(1, 1, 8, 12))] == [(1, 2, 8, 12), (1, 2, 8, 6)]
    plans_norm = authors_network(authors_norm=False, nonlin_kwargs={"inplace": True},
                                 norm_op_kwargs={"eps": 1e-5, "affine": True})
    assert any(isinstance(m, nn.InstanceNorm2d) for m in plans_norm.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plans_norm.modules())
    with pytest.raises(ValueError, match="at least two levels"):
        authors_network(n_stages=1, features_per_stage=[8], strides=[[1, 1]], kernel_sizes=[[3, 3]])


@pytest.mark.parametrize("patch", PLANNED_PATCHES)
def test_the_trainer_builds_the_authors_network_from_the_plans(patch):
    network, configuration = built_from_plans(nnUNetTrainer25DRIUNet, planned_plans(patch), deep_supervision=True)
    assert isinstance(network.network_2d, RIUNetReference)
    levels = min(len(configuration.pool_op_kernel_sizes), 5)
    assert network.network_2d.levels == levels
    shape = np.array([2, *patch])
    with torch.no_grad():
        outputs = network(torch.randn(1, 1, *shape))
    assert [tuple(o.shape) for o in outputs] == deep_supervision_shapes(configuration, shape)[:levels - 1]


def test_a_checkpoint_of_the_other_network_is_refused_in_one_line():
    plans = planned_plans((64, 64))
    reference, _ = built_from_plans(nnUNetTrainer25DRIUNet, plans)
    factorised, _ = built_from_plans(nnUNetTrainer25DRIUNet_Factorised, plans)
    check_same_architecture({f"module.{k}": v for k, v in reference.state_dict().items()}, reference, "x", "y")
    with pytest.raises(EarlierArchitectureError, match=r"^this checkpoint holds an earlier version of RIU-Net \(\d+ "
                                                       r"tensors missing, \d+ unexpected, \d+ of another shape\): "
                                                       r"retrain$") as error:
        check_same_architecture(factorised.state_dict(), reference, "RIU-Net", "retrain")
    assert "\n" not in str(error.value)


def test_the_plans_norm_and_nonlinearity_settings_reach_every_layer():
    """nnU-Net's plans carry the norm's and the non-linearity's keyword arguments: every norm and activation of the
    authors' network (on the plan's norm), the factorised ablation and a lone block gets them."""
    settings = dict(norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-3, "affine": True},
                    nonlin=nn.LeakyReLU, nonlin_kwargs={"negative_slope": 0.2})
    networks = [authors_network(authors_norm=False, **settings),
                RIUNet(1, 2, 3, [8, 16, 32], [[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]], 2, 2, conv_bias=False,
                       **settings),
                InceptionResidualBlock(8, 16, **settings)]
    for network in networks:
        norms = [m for m in network.modules() if isinstance(m, nn.InstanceNorm2d)]
        activations = [m for m in network.modules() if isinstance(m, nn.LeakyReLU)]
        assert norms and all(m.eps == 1e-3 and m.affine for m in norms), type(network).__name__
        assert activations and all(m.negative_slope == 0.2 for m in activations), type(network).__name__
    blocks = [m for m in networks[1].modules() if isinstance(m, ResidualInceptionBlock)]
    convolutions = [c for b in blocks for c in b.modules() if isinstance(c, nn.Conv2d)]
    assert convolutions and not any(c.bias is not None for c in convolutions)
    assert sum(isinstance(c, nn.InstanceNorm2d) for b in blocks for c in b.modules()) == len(convolutions), \
        "the ablation normalises after every convolution"


def test_two_levels_are_enough_for_the_authors_network():
    two = authors_network(n_stages=2, features_per_stage=[8, 16], strides=[[1, 1], [2, 2]], kernel_sizes=[[3, 3]] * 2)
    assert two.levels == 2 and tuple(two(torch.randn(1, 1, 8, 8)).shape) == (1, 2, 8, 8)
