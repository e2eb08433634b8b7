"""nnUNetTrainer25DRIUNet: the residual-inception block's branches and shortcut, the network's parameter budget
against the planned U-Net, the network nnU-Net builds from the derived plans, the CLI flow."""
from __future__ import annotations

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

from nnunet_25d.architectures.blocks.residual_inception import ResidualInceptionBlock
from nnunet_25d.architectures.riu_net import RIUNet
from nnunet_25d.trainers.registry import TRAINERS
from nnunet_25d.trainers.riu_net_trainer import nnUNetTrainer25DRIUNet
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
def test_riu_net_holds_about_a_third_of_the_planned_unets_parameters(patch):
    """The paper's budget: about 70 % fewer parameters than a U-Net. With nnU-Net's feature counts (32, doubling,
    at most 512) and planned stages: 33-37 %."""
    plans = planned_plans(patch)
    kwargs = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]
    kwargs["features_per_stage"] = [min(32 * 2 ** i, 512) for i in range(kwargs["n_stages"])]
    count = lambda network: sum(p.numel() for p in network.parameters())  # noqa: E731
    riu_net, _ = built_from_plans(nnUNetTrainer25DRIUNet, plans)
    unet, _ = built_from_plans(nnUNetTrainer25D, plans)
    assert 0.30 < count(riu_net) / count(unet) < 0.40


@pytest.mark.parametrize("patch", PLANNED_PATCHES)
def test_riu_net_deep_supervision_outputs_at_the_planned_strides(patch):
    network, configuration = built_from_plans(nnUNetTrainer25DRIUNet, planned_plans(patch), deep_supervision=True)
    shape = np.array([2, *patch])
    with torch.no_grad():
        outputs = network(torch.randn(1, 1, *shape))
    assert [tuple(o.shape) for o in outputs] == deep_supervision_shapes(configuration, shape)
    assert isinstance(network.network_2d, RIUNet)
    blocks = [m for m in network.network_2d.encoder.modules() if isinstance(m, ResidualInceptionBlock)]
    assert len(blocks) == 2 * len(configuration.pool_op_kernel_sizes), "one block per planned convolution"


def test_gradients_reach_every_parameter():
    network, _ = built_from_plans(nnUNetTrainer25DRIUNet, planned_plans((32, 32)), deep_supervision=True)
    network.train()
    network.interior_only = True
    outputs = network(torch.randn(2, 1, 3, 32, 32))
    sum(o.square().mean() for o in outputs).backward()
    silent = [name for name, p in network.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


@pytest.mark.parametrize("slab_size", [3, 5])
def test_riu_net_slice_depends_on_its_slab_only(slab_size):
    network, _ = built_from_plans(TRAINERS[f"nnUNetTrainer25DRIUNet_{slab_size}slices"], planned_plans((32, 32)))
    assert_slice_depends_on_its_slab_only(network, (32, 32), k=slab_size // 2)


def test_riu_net_refuses_a_3d_plan():
    with pytest.raises(ValueError, match="2d configuration"):
        RIUNet(1, 2, 2, [4, 8], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]], 1, 1, conv_op=nn.Conv3d)


@pytest.mark.integration
def test_riu_net_cli_train_validate_predict(nnunet, tiny_dataset, tmp_path):
    plans = train_then_predict_validation_case(nnunet, tiny_dataset, "nnUNetTrainer25DRIUNet_2epochs_5iters", tmp_path)
    kwargs = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]
    assert kwargs["network_2d"].endswith("RIUNet") and kwargs["slab_size"] == 3
