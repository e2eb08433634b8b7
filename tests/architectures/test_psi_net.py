"""nnUNetTrainer25DPsiNet: the self-attention and contextual-attention blocks against their equations, the
class-balanced cross-entropy and the slice task's targets against loops over the labels, the network nnU-Net
builds from the derived plans, the trainer's loss assembled from its parts, the CLI flow."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.architectures.test_deeplab import (
    PLANNED_PATCHES,
    assert_slice_depends_on_its_slab_only,
    built_from_plans,
    deep_supervision_shapes,
    one_thread,  # noqa: F401  (autouse fixture)
    planned_plans,
    train_then_predict_validation_case,
)

from nnunet_25d.architectures.blocks.contextual_attention import ContextualAttentionGate
from nnunet_25d.architectures.blocks.position_attention import PositionSelfAttention
from nnunet_25d.architectures.psi_net import PsiNet
from nnunet_25d.architectures.blocks.slice_output import SliceOutput
from nnunet_25d.losses.slice_supervision import (
    ClassBalancedCrossEntropy,
    SlicePresenceLoss,
    SliceSupervisedLoss,
    slice_presence,
)
from nnunet_25d.trainers.psi_net_trainer import nnUNetTrainer25DPsiNet
from nnunet_25d.trainers.registry import TRAINERS


def conv1x1(conv: torch.nn.Conv2d, x: np.ndarray) -> np.ndarray:
    """(C, P) features of P positions through a 1x1 convolution."""
    weight = conv.weight.detach().double().numpy()[:, :, 0, 0]
    bias = 0 if conv.bias is None else conv.bias.detach().double().numpy()[:, None]
    return weight @ x + bias


def test_self_attention_is_the_softmax_weighted_sum_of_values_over_all_positions():
    torch.manual_seed(0)
    block = PositionSelfAttention(8, reduction=4, initial_gamma=0.7)
    x = torch.randn(1, 8, 3, 4)
    flat = x[0].double().numpy().reshape(8, -1)
    q, k, v = conv1x1(block.query, flat), conv1x1(block.key, flat), conv1x1(block.value, flat)
    expected = np.empty_like(flat)
    for i in range(flat.shape[1]):
        scores = np.array([q[:, i] @ k[:, j] for j in range(flat.shape[1])])
        weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        expected[:, i] = flat[:, i] + 0.7 * sum(weights[j] * v[:, j] for j in range(flat.shape[1]))
    with torch.no_grad():
        np.testing.assert_allclose(block(x)[0].double().numpy().reshape(8, -1), expected, atol=1e-5)
    assert block.query.out_channels == 2 and block.value.out_channels == 8


def test_self_attention_starts_as_the_identity_and_sees_the_whole_map():
    torch.manual_seed(0)
    block = PositionSelfAttention(4, reduction=2)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)
        block.gamma.fill_(1.0)
        moved = x.clone()
        moved[:, :, 4, 4] += 5  # one corner pixel changes the output at the opposite corner
        assert not torch.allclose(block(moved)[:, :, 0, 0], block(x)[:, :, 0, 0])


def test_contextual_gate_is_its_equation_and_suppresses_skips_where_the_context_says_so():
    torch.manual_seed(0)
    gate = ContextualAttentionGate(4, 6, reduction=2)
    skip, context = torch.randn(2, 4, 5, 5), torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        hidden = torch.relu(gate.theta(skip) + gate.phi(context))
        attention = torch.sigmoid(gate.psi(hidden))
        gated, returned = gate(skip, context)
        torch.testing.assert_close(returned, attention)
        torch.testing.assert_close(gated, skip * attention)
        # hand-built: the map follows context channel 0 only
        for conv in (gate.theta, gate.phi, gate.psi):
            conv.weight.zero_()
        gate.phi.weight[:, 0] = 1.0
        gate.phi.bias.fill_(0.0)
        gate.psi.weight.fill_(4.0)
        gate.psi.bias.fill_(-2.0)
        context = torch.zeros(1, 6, 4, 4)
        context[0, 0, :2] = 1.0  # "target" in the upper half
        gated, attention = gate(torch.ones(1, 4, 4, 4), context)
    assert torch.all(attention[0, 0, :2] > 0.99) and torch.all(attention[0, 0, 2:] < 0.13)
    assert torch.all(gated[0, :, 2:] < 0.13) and torch.all(gated[0, :, :2] > 0.99)


def test_class_balanced_cross_entropy_averages_each_present_classes_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 7)
    labels = torch.zeros(2, 1, 6, 7, dtype=torch.long)
    labels[0, 0, :2] = 1
    labels[1, 0, 3, 3] = 2  # class 3 absent; 9 is the ignore label
    labels[1, 0, 5] = 9
    per_voxel = F.cross_entropy(logits, labels[:, 0].clamp_max(3), reduction="none")
    flat_labels = labels[:, 0]
    expected = torch.stack([per_voxel[flat_labels == c].mean() for c in (0, 1, 2)]).mean()
    torch.testing.assert_close(ClassBalancedCrossEntropy(ignore_index=9)(logits, labels), expected)


def test_class_balanced_cross_entropy_does_not_change_when_background_grows():
    torch.manual_seed(0)
    logits, labels = torch.randn(1, 2, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long)
    labels[0, 0, :, 0] = 1  # column 0 foreground, the others background
    doubled_logits = torch.cat([logits, logits[..., 1:]], dim=-1)  # every background voxel twice
    doubled_labels = torch.cat([labels, labels[..., 1:]], dim=-1)
    loss = ClassBalancedCrossEntropy()
    torch.testing.assert_close(loss(logits, labels), loss(doubled_logits, doubled_labels))
    plain = F.cross_entropy(logits, labels[:, 0])
    assert not torch.isclose(plain, F.cross_entropy(doubled_logits, doubled_labels[:, 0])), "plain CE changes"


def test_slice_presence_marks_the_slices_that_hold_each_label():
    target = torch.zeros(2, 1, 3, 4, 4, dtype=torch.long)
    target[0, 0, 1, 2, 2] = 1
    target[1, 0, 0, 0, 0] = 2
    target[1, 0, 2] = 1
    expected = torch.tensor([[[0, 1, 0], [0, 0, 0]], [[0, 0, 1], [1, 0, 0]]], dtype=torch.float32)
    torch.testing.assert_close(slice_presence(target, 2), expected)


@pytest.mark.parametrize("patch", PLANNED_PATCHES)
def test_psi_net_outputs_deep_supervision_and_slice_logits_of_the_supervised_slices(patch):
    network, configuration = built_from_plans(nnUNetTrainer25DPsiNet, planned_plans(patch), deep_supervision=True)
    assert isinstance(network.network_2d, PsiNet)
    shape = np.array([2, *patch])
    with torch.no_grad():
        outputs = network(torch.randn(1, 1, *shape))
    assert [tuple(o.shape) for o in outputs] == deep_supervision_shapes(configuration, shape), "eval: nnU-Net's"
    network.train()
    network.interior_only = True
    output = network(torch.randn(2, 1, 5, *patch))
    assert isinstance(output, SliceOutput)
    assert tuple(output.slice_logits.shape) == (2, 2, 3), "(patches, foreground labels, supervised slices)"
    assert tuple(output.segmentation[0].shape) == (2, 3, 3, *patch)


def test_slice_logits_come_from_their_own_slab():
    """Slab b*D + z's logits land at [b, :, z]: each slice's logits equal the 2D network's on that slice's slab."""
    network, _ = built_from_plans(nnUNetTrainer25DPsiNet, planned_plans((32, 32)))
    network.train()
    network.interior_only = True
    x = torch.randn(2, 1, 5, 32, 32)
    for module in network.modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            module.eval()
    with torch.no_grad():
        logits = network(x).slice_logits
        for b in range(2):
            for z in range(3):
                slab = x[b:b + 1, 0, z:z + 3]  # (1, 3, H, W): the slab as channels
                expected = network.network_2d(slab).slice_logits[0]
                torch.testing.assert_close(logits[b, :, z], expected, atol=1e-5, rtol=1e-4)


def test_gradients_reach_every_parameter():
    network, _ = built_from_plans(nnUNetTrainer25DPsiNet, planned_plans((32, 32)), deep_supervision=True)
    network.network_2d.self_attention.gamma.data.fill_(0.5)  # at 0 (its start) q, k, v get no gradient yet
    network.train()
    network.interior_only = True
    output = network(torch.randn(2, 1, 3, 32, 32))
    (sum(o.square().mean() for o in output.segmentation) + output.slice_logits.square().mean()).backward()
    silent = [name for name, p in network.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


@pytest.mark.parametrize("slab_size", [3, 5])
def test_psi_net_slice_depends_on_its_slab_only(slab_size):
    network, _ = built_from_plans(TRAINERS[f"nnUNetTrainer25DPsiNet_{slab_size}slices"], planned_plans((32, 32)))
    network.network_2d.self_attention.gamma.data.fill_(0.5)
    assert_slice_depends_on_its_slab_only(network, (32, 32), k=slab_size // 2)


def test_psi_net_has_no_border_loss_variant():
    assert "nnUNetTrainer25DPsiNet_BorderLoss" not in TRAINERS and "nnUNetTrainer25D_BorderLoss" in TRAINERS


@pytest.mark.integration
def test_psi_net_trainer_loss_is_dice_balanced_ce_and_the_slice_task(nnunet, tiny_dataset, monkeypatch):
    trainer = nnunet.trainer(tiny_dataset, nnUNetTrainer25DPsiNet, "2d", monkeypatch)
    loss = trainer.loss
    assert isinstance(loss, SliceSupervisedLoss) and isinstance(loss.loss.ce, ClassBalancedCrossEntropy)
    torch.manual_seed(0)
    shapes = [(2, 3, 3, 32 // 2 ** i, 32 // 2 ** i) for i in range(3)]
    segmentation = [torch.randn(s) for s in shapes]
    target = torch.randint(0, 3, (2, 1, 3, 32, 32))
    targets = [target[..., ::2 ** i, ::2 ** i] for i in range(3)]
    slice_logits = torch.randn(2, 2, 3)
    weights = np.array([1 / 2 ** i for i in range(3)])
    weights = weights / weights.sum()
    expected = sum(w * loss.loss(o, t) for w, o, t in zip(weights, segmentation, targets))
    expected = expected + SlicePresenceLoss()(slice_logits, target)
    loss.weight_factors = tuple(weights)
    torch.testing.assert_close(loss(SliceOutput(segmentation, slice_logits), targets), expected)
    torch.testing.assert_close(loss(segmentation, targets), expected - SlicePresenceLoss()(slice_logits, target))


@pytest.mark.integration
def test_psi_net_cli_train_validate_predict(nnunet, tiny_dataset, tmp_path):
    plans = train_then_predict_validation_case(nnunet, tiny_dataset, "nnUNetTrainer25DPsiNet_2epochs_5iters", tmp_path)
    kwargs = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]
    assert kwargs["network_2d"].endswith("PsiNet") and kwargs["return_slice_logits"] is True


def test_slice_presence_loss_is_the_bce_against_each_slices_labels():
    target = torch.zeros(1, 1, 2, 4, 4, dtype=torch.long)
    target[0, 0, 1, 0, 0] = 2
    logits = torch.tensor([[[0.5, -1.0], [2.0, 0.3]]])  # (B, K', D)
    presence = torch.tensor([[[0.0, 0.0], [0.0, 1.0]]])
    expected = F.binary_cross_entropy_with_logits(logits, presence)
    torch.testing.assert_close(SlicePresenceLoss()(logits, target), expected)
    assert not torch.isclose(SlicePresenceLoss()(logits, torch.zeros_like(target)), expected)


@pytest.mark.parametrize("channels, hidden", [(64, 8), (8, 1), (4, 1)])
def test_position_attention_projects_queries_and_keys_to_an_eighth_of_the_channels_at_least_one(channels, hidden):
    block = PositionSelfAttention(channels)
    assert block.query.out_channels == block.key.out_channels == hidden and block.value.out_channels == channels
