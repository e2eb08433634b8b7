"""The survey networks take what the plans give them: every convolution of RIU-Net's residual-inception blocks,
the stage U-Net's encoder and decoder, and Ψ-Net's additions gets the plan's norm, non-linearity, bias, kernel
sizes, strides and block counts (written after mutation testing showed the tests did not pin them down)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nnunet_25d.architectures.blocks.multi_scale_conv import split_channels
from nnunet_25d.architectures.psi_net import PsiNet
from nnunet_25d.architectures.blocks.residual_inception import ConvNormAct, ResidualInceptionBlock
from nnunet_25d.architectures.riu_net import ResidualInceptionStage, RIUNet
from nnunet_25d.architectures.blocks.slice_output import SliceOutput

PLAN_LAYERS = dict(norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-3, "affine": True}, nonlin=nn.LeakyReLU,
                   nonlin_kwargs={"negative_slope": 0.2})


def assert_plan_layers(unit: nn.Sequential, bias: bool, nonlin: bool = True) -> None:
    conv, norm, *rest = unit
    assert isinstance(conv, nn.Conv2d) and (conv.bias is not None) == bias
    assert isinstance(norm, nn.InstanceNorm2d) and norm.eps == 1e-3 and norm.affine
    if nonlin:
        (act,) = rest
        assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.2
    else:
        assert rest == []


@pytest.mark.parametrize("bias", [True, False])
def test_every_block_convolution_gets_the_plans_norm_nonlinearity_and_bias(bias):
    block = ResidualInceptionBlock(4, 10, 3, conv_bias=bias, **PLAN_LAYERS)
    units = [m for m in block.branches.modules() if isinstance(m, ConvNormAct)]
    assert len(units) == 1 + 3 + 5 + 1
    for unit in units:
        assert_plan_layers(unit, bias)
    assert_plan_layers(block.shortcut, bias, nonlin=False)
    assert isinstance(block.activation, nn.LeakyReLU) and block.activation.negative_slope == 0.2


@pytest.mark.parametrize("out_channels", [9, 10, 11])
def test_branch_widths_follow_the_split_and_add_up_to_the_output(out_channels):
    block = ResidualInceptionBlock(4, out_channels)
    widths = [next(m for m in b.modules() if isinstance(m, nn.Conv2d)).out_channels for b in block.branches]
    assert widths == split_channels(out_channels, 4)
    assert block(torch.randn(1, 4, 9, 7)).shape == (1, out_channels, 9, 7)


def test_the_default_kernel_is_3_and_a_5_kernel_keeps_the_map_size():
    assert [m.kernel_size for m in ResidualInceptionBlock(2, 8).branches[1].modules()
            if isinstance(m, nn.Conv2d)] == [(1, 1), (1, 3), (3, 1)]
    assert ResidualInceptionBlock(2, 8).branches[0][0][0].bias is not None, "bias on by default"
    wide = ResidualInceptionBlock(2, 8, 5)
    assert wide.branches[3][0].padding == (2, 2)
    assert wide(torch.randn(1, 2, 11, 9)).shape == (1, 8, 11, 9)


def riu_net(**overrides) -> RIUNet:
    kwargs = dict(input_channels=3, num_classes=2, n_stages=3, features_per_stage=[8, 12, 16],
                  kernel_sizes=[[3, 3], [1, 3], [3, 1]], strides=[[1, 1], [2, 1], [1, 2]], n_conv_per_stage=[1, 2, 1],
                  n_conv_per_stage_decoder=[2, 1], conv_bias=False, **PLAN_LAYERS)
    kwargs.update(overrides)
    return RIUNet(**kwargs)


def test_riu_net_hands_the_plans_layers_to_every_block():
    net = riu_net()
    blocks = [m for m in net.modules() if isinstance(m, ResidualInceptionBlock)]
    assert len(blocks) == (1 + 2 + 1) + (2 + 1)
    for unit in (m for m in net.modules() if isinstance(m, ConvNormAct)):
        assert_plan_layers(unit, bias=False, nonlin=len(unit) == 3)
    assert all(up.bias is None for up in net.decoder.upsampling)
    assert all(isinstance(b.activation, nn.LeakyReLU) and b.activation.negative_slope == 0.2 for b in blocks)


def test_riu_net_follows_the_plans_strides_kernels_and_block_counts():
    net = riu_net()
    pools = [stage[0] if isinstance(stage[0], nn.MaxPool2d) else None for stage in net.encoder]
    assert pools[0] is None and (pools[1].kernel_size, pools[1].stride) == ((2, 1), (2, 1))
    assert (pools[2].kernel_size, pools[2].stride) == ((1, 2), (1, 2))
    assert [sum(isinstance(m, ResidualInceptionBlock) for m in stage) for stage in net.encoder] == [1, 2, 1]
    assert [len(stage) for stage in net.decoder.stages] == [2, 1], "the plan's decoder convolutions per stage"
    assert [(up.kernel_size, up.stride) for up in net.decoder.upsampling] == [((1, 2), (1, 2)), ((2, 1), (2, 1))]
    decoder_kernels = [stage[0].branches[1][2][0].kernel_size for stage in net.decoder.stages]
    assert decoder_kernels == [(1, 1), (3, 1)], "stage s gets the kernel of the encoder stage it joins"
    assert net(torch.randn(2, 3, 8, 6)).shape == (2, 2, 8, 6)


def test_riu_net_expands_single_values_per_stage_and_defaults():
    net = RIUNet(3, 2, 3, 8, 3, [[1, 1], [2, 2], [2, 2]], 2, 1)
    assert [stage[-1].branches[0][0][0].out_channels * 4 for stage in net.encoder] == [8, 8, 8]
    assert [sum(isinstance(m, ResidualInceptionBlock) for m in stage) for stage in net.encoder] == [2, 2, 2]
    assert [len(stage) for stage in net.decoder.stages] == [1, 1]
    assert net.decoder.upsampling[0].bias is not None, "conv_bias defaults on, as nnU-Net's plans"
    assert isinstance(net(torch.randn(1, 3, 8, 8)), torch.Tensor), "deep supervision off by default"
    assert isinstance(riu_net(deep_supervision=True)(torch.randn(1, 3, 8, 6)), list)


def test_a_3d_plan_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^RIUNet is a 2D network \(conv_op torch.nn.Conv2d\)"):
        riu_net(conv_op=nn.Conv3d)
    stage = ResidualInceptionStage(1, 2, 4, 3, 2)
    assert isinstance(stage[0], nn.MaxPool2d) and stage[0].kernel_size == (2, 2)


def psi_net(**overrides) -> PsiNet:
    kwargs = dict(input_channels=3, num_classes=3, n_stages=3, features_per_stage=[16, 24, 32], conv_op=nn.Conv2d,
                  kernel_sizes=[[3, 3]] * 3, strides=[[1, 1], [2, 2], [2, 2]], n_conv_per_stage=[1, 1, 1],
                  n_conv_per_stage_decoder=[1, 1], conv_bias=True, norm_op=nn.InstanceNorm2d,
                  norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})
    kwargs.update(overrides)
    return PsiNet(**kwargs)


def test_psi_net_defaults_reduce_attention_8x_and_gates_2x_and_classify_each_foreground_label():
    net = psi_net()
    assert (net.self_attention.query.in_channels, net.self_attention.query.out_channels) == (32, 4)
    assert [(g.theta.in_channels, g.theta.out_channels, g.phi.in_channels) for g in net.gates] == \
        [(24, 12, 24), (16, 8, 16)]
    assert (net.slice_classifier.linear.in_features, net.slice_classifier.linear.out_features) == (32, 2)
    assert psi_net(slice_outputs=5).slice_classifier.linear.out_features == 5
    assert psi_net(num_classes=1).slice_classifier.linear.out_features == 1, "at least one slice output"
    net.train()
    assert isinstance(net(torch.randn(2, 3, 8, 8)), torch.Tensor), "slice logits only when asked for"
    assert isinstance(psi_net(return_slice_logits=True).train()(torch.randn(2, 3, 8, 8)), SliceOutput)


def test_psi_net_refuses_a_3d_plan_by_name():
    with pytest.raises(ValueError, match=r"^PsiNet is a 2D network \(conv_op torch.nn.Conv2d\), the plans give"):
        psi_net(conv_op=nn.Conv3d, kernel_sizes=[[3, 3, 3]] * 3, strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                norm_op=nn.InstanceNorm3d)


def test_gate_and_block_defaults():
    from nnunet_25d.architectures.blocks.contextual_attention import ContextualAttentionGate

    assert ContextualAttentionGate(24, 16).theta.out_channels == 12, "reduction 2 by default"
    assert ContextualAttentionGate(3, 3, 4).theta.out_channels == 1, "at least one hidden channel"
    assert ConvNormAct(2, 3, (1, 1))[0].bias is not None
    assert not any(isinstance(m, nn.MaxPool2d) for m in ResidualInceptionStage(1, 2, 4, 3)), "stride 1 by default"


def test_riu_net_hands_a_bias_on_to_every_convolution():
    net = riu_net(conv_bias=True)
    assert all(m.bias is not None for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    flat = riu_net(strides=1, kernel_sizes=3)
    assert flat(torch.randn(1, 3, 6, 5)).shape == (1, 2, 6, 5), "one stride and one kernel for every stage"


def test_stage_unet_defaults_and_nnunets_initialisation():
    from nnunet_25d.architectures.blocks.stage_unet import StageUNet

    net = StageUNet(3, 2, 2, [4, 8], 3, [[1, 1], [2, 2]], 1, 1,
                    build_stage=lambda n, c_in, c_out, kernel, stride: nn.Conv2d(c_in, c_out, 3, stride, 1))
    assert net.decoder.upsampling[0].bias is not None and isinstance(net(torch.randn(1, 3, 8, 8)), torch.Tensor)
    conv = nn.Conv2d(64, 64, 3)
    nn.init.constant_(conv.bias, 1.0)
    torch.manual_seed(0)
    StageUNet.initialize(conv)
    assert torch.count_nonzero(conv.bias) == 0
    assert conv.weight.std().item() == pytest.approx((2 / (1 + 1e-4) / (64 * 9)) ** 0.5, rel=0.05)


def test_psi_net_passes_its_reductions_on_and_outputs_the_full_resolution():
    net = psi_net(self_attention_reduction=4, gate_reduction=4)
    assert net.self_attention.query.out_channels == 8
    assert [g.theta.out_channels for g in net.gates] == [6, 4]
    assert net.eval()(torch.randn(2, 3, 8, 8)).shape == (2, 3, 8, 8)


def test_slice_losses_take_channel_less_targets_and_targets_without_leading_axes():
    from nnunet_25d.losses.slice_supervision import ClassBalancedCrossEntropy, SlicePresenceLoss, labels_of, slice_presence

    logits = torch.randn(2, 4, 2, 3)  # 4 classes on a 2 x 3 map: fewer rows than classes
    labels = torch.tensor([[[0, 1, 1], [3, 3, 3]], [[0, 0, 1], [1, 3, 3]]])
    assert torch.equal(labels_of(labels, logits), labels)
    counts = torch.tensor([3.0, 4.0, 0.0, 5.0])
    weights = torch.where(counts > 0, 1 / counts.clamp_min(1), torch.zeros_like(counts))
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weights)
    torch.testing.assert_close(ClassBalancedCrossEntropy()(logits, labels), expected)
    absent_top = torch.tensor([[[0, 1, 1], [0, 0, 0]]])  # classes 2 and 3 absent: weights still one per class
    torch.testing.assert_close(ClassBalancedCrossEntropy()(logits[:1], absent_top),
                               torch.nn.functional.cross_entropy(logits[:1], absent_top,
                                                                 weight=torch.tensor([1 / 4, 1 / 2, 0.0, 0.0])))
    wide = torch.randn(1, 2, 5, 1)
    wide_labels = torch.tensor([[[[0], [1], [1], [1], [0]]]])
    torch.testing.assert_close(ClassBalancedCrossEntropy()(wide, wide_labels),
                               torch.nn.functional.cross_entropy(wide, wide_labels[:, 0],
                                                                 weight=torch.tensor([1 / 2, 1 / 3])))
    flat_target = torch.zeros(2, 1, 4, 4)
    flat_target[0, 0, 1, 1] = 2
    assert torch.equal(slice_presence(flat_target, 2), torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    slice_logits = torch.randn(1, 2, 3)  # (B, K' = 2 labels, D = 3 slices)
    target = torch.zeros(1, 1, 3, 4, 4)
    target[0, 0, 2, 0, 0] = 1
    presence = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    torch.testing.assert_close(SlicePresenceLoss()(slice_logits, target),
                               torch.nn.functional.binary_cross_entropy_with_logits(slice_logits, presence))


def test_auxiliary_supervised_loss_adds_the_weighted_auxiliary_term_to_the_segmentation_loss():
    from collections import namedtuple

    from nnunet_25d.losses.auxiliary import AuxiliarySupervisedLoss

    Pair = namedtuple("Pair", "segmentation auxiliary")

    class PairLoss(AuxiliarySupervisedLoss):
        output_type = Pair

    mse, l1 = nn.MSELoss(), nn.L1Loss()
    torch.manual_seed(0)
    seg, target, aux = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    single = PairLoss(mse, None, l1, auxiliary_weight=0.5)
    assert not single.deep_supervision
    torch.testing.assert_close(single(Pair(seg, aux), target), mse(seg, target) + 0.5 * l1(aux, target))
    torch.testing.assert_close(single(seg, target), mse(seg, target)), "an eval output: segmentation loss only"
    torch.testing.assert_close(PairLoss(mse, None, l1, 0.0)(Pair(seg, aux), target), mse(seg, target))
    deep = PairLoss(mse, [0.75, 0.25], l1)
    assert deep.deep_supervision and deep.auxiliary_weight == 1.0
    expected = 0.75 * mse(seg, target) + 0.25 * mse(seg[:, :2], target[:, :2]) + l1(aux, target)
    torch.testing.assert_close(deep(Pair([seg, seg[:, :2]], aux), [target, target[:, :2]]), expected)


def test_class_balanced_ce_counts_class_100_and_keeps_the_logits_dtype():
    from nnunet_25d.losses.slice_supervision import ClassBalancedCrossEntropy

    logits = torch.randn(1, 101, 1, 2, dtype=torch.float64)
    labels = torch.tensor([[[0, 100]]])
    weights = torch.zeros(101, dtype=torch.float64)
    weights[[0, 100]] = 1.0
    torch.testing.assert_close(ClassBalancedCrossEntropy()(logits, labels),
                               torch.nn.functional.cross_entropy(logits, labels, weight=weights))
