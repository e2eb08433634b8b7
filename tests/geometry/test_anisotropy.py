import math

import pytest
import torch
from torch import nn

from nnunet_25d.geometry.anisotropy import NNUNET_SWITCH_RATIO, anisotropic_topology
from nnunet_25d.architectures.aniso_unet import AnisoUNet, AttentionOutput
from nnunet_25d.architectures.blocks.spatial_attention import SpatialAttention

IN_PLANE, FULL_3D = [1, 3, 3], [3, 3, 3]
POOL_IN_PLANE, POOL_3D, NO_POOL = [1, 2, 2], [2, 2, 2], [1, 1, 1]


@pytest.mark.parametrize(
    "spacing, patch, switch",
    [
        ((4.0, 0.8, 0.8), (20, 64, 64), 3),  # 0.8 -> 1.6 -> 3.2 (< 4) -> 6.4 mm in-plane: 3D from the fourth stage
        ((1.0, 1.0, 1.0), (64, 64, 64), 0),  # isotropic: a plain 3D U-Net
        ((3.0, 1.0, 1.0), (32, 96, 96), 2),  # 1 -> 2 (< 3) -> 4
        ((5.0, 0.5, 0.5), (8, 128, 128), 4),  # 0.5 -> 1 -> 2 -> 4 (< 5) -> 8
        ((1.6, 0.4, 0.4), (16, 64, 64), 2),  # 0.4 -> 0.8 -> 1.6: reached exactly
        ((1.6001, 0.4, 0.4), (16, 64, 64), 2),  # header rounding noise still counts as reached
        ((1.001, 1.0, 1.0), (16, 64, 64), 0),  # the tolerance's edge (0.1 %) counts as reached
        ((40.0, 0.5, 0.5), (6, 128, 128), 6),  # never reached within 5 poolings: in-plane only
        ((3.0, 1.0, 2.0), (32, 64, 64), 2),  # y 1 -> 2 (< 3) -> 4: the finest in-plane axis decides
    ],
)
def test_switch_stage_follows_the_paper(spacing, patch, switch):
    topology = anisotropic_topology(list(spacing), list(patch))
    assert topology.switch_stage == switch
    for kernel, stride in zip(topology.kernel_sizes, topology.strides):
        if kernel[0] == 1:
            assert stride[0] == 1, "in-plane stages never pool along the slices"
    assert len(topology.kernel_sizes) == len(topology.strides)


# The README's stage table. Wang et al.'s scans (0.41 x 0.41 x 1.5 mm, VS_Seg's 128 x 128 x 32 crop, 5 levels): two
# in-plane levels, then 3D - the layout of the group's UNet2d5_spvPA. Our synthetic data (0.8 x 0.8 x 4 mm, nnU-Net's
# 3d_fullres patch 20 x 64 x 64): three in-plane levels with the paper's rule, two with nnU-Net's factor 2.
STAGE_TABLE = [
    ((1.5, 0.41, 0.41), (32, 128, 128), 1.0,
     [IN_PLANE, IN_PLANE, FULL_3D, FULL_3D, FULL_3D], [NO_POOL, POOL_IN_PLANE, POOL_IN_PLANE, POOL_3D, POOL_3D]),
    ((1.5, 0.41, 0.41), (32, 128, 128), NNUNET_SWITCH_RATIO,
     [IN_PLANE, FULL_3D, FULL_3D, FULL_3D, FULL_3D], [NO_POOL, POOL_IN_PLANE, POOL_3D, POOL_3D, POOL_3D]),
    ((4.0, 0.8, 0.8), (20, 64, 64), 1.0,
     [IN_PLANE, IN_PLANE, IN_PLANE, FULL_3D, FULL_3D], [NO_POOL, POOL_IN_PLANE, POOL_IN_PLANE, POOL_IN_PLANE, POOL_3D]),
    ((4.0, 0.8, 0.8), (20, 64, 64), NNUNET_SWITCH_RATIO,
     [IN_PLANE, IN_PLANE, FULL_3D, FULL_3D, FULL_3D], [NO_POOL, POOL_IN_PLANE, POOL_IN_PLANE, POOL_3D, POOL_3D]),
    ((1.0, 1.0, 1.0), (64, 64, 64), 1.0,
     [FULL_3D] * 5, [NO_POOL, POOL_3D, POOL_3D, POOL_3D, POOL_3D]),
]


@pytest.mark.parametrize("spacing, patch, ratio, kernels, strides", STAGE_TABLE)
def test_stage_table(spacing, patch, ratio, kernels, strides):
    topology = anisotropic_topology(list(spacing), list(patch), max_stages=5, switch_ratio=ratio)
    assert topology.kernel_sizes == kernels
    assert topology.strides == strides


def test_once_3d_always_3d():
    # 5th stride pools z only (x/y too small): 12.8 mm in-plane, 16 mm slices must not flip back to in-plane
    topology = anisotropic_topology([4.0, 0.8, 0.8], [20, 64, 64], max_stages=6)
    assert topology.strides[-1] == [2, 1, 1]
    assert topology.kernel_sizes[topology.switch_stage:] == [FULL_3D] * (6 - topology.switch_stage)


def test_at_most_six_stages_by_default_and_none_that_cannot_pool():
    assert len(anisotropic_topology([1.0, 1.0, 1.0], [256, 256, 256]).kernel_sizes) == 6
    small = anisotropic_topology([1.0, 1.0, 1.0], [8, 8, 8])  # 8 -> 4, then no axis can pool: two stages
    assert small.kernel_sizes == [FULL_3D, FULL_3D] and small.strides == [NO_POOL, POOL_3D]


def test_feature_maps_never_pool_below_the_minimum():
    topology = anisotropic_topology([1.0, 1.0, 1.0], [8, 64, 64])
    depth = 8
    for stride in topology.strides:
        depth //= stride[0]
    assert depth >= 4


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="3D spacing"):
        anisotropic_topology([1.0, 1.0], [64, 64])
    with pytest.raises(ValueError, match="3D spacing"):
        anisotropic_topology([4.0, 1.0, 1.0], [64, 64])
    with pytest.raises(ValueError, match="spacing and switch_ratio must be positive"):
        anisotropic_topology([0.0, 1.0, 1.0], [8, 64, 64])
    with pytest.raises(ValueError, match="switch_ratio must be positive"):
        anisotropic_topology([4.0, 1.0, 1.0], [8, 64, 64], switch_ratio=0)


def unet_kwargs(topology, deep_supervision: bool = True) -> dict:
    n = len(topology.kernel_sizes)
    return dict(input_channels=1, n_stages=n, features_per_stage=[4 * 2 ** i for i in range(n)],
                conv_op=nn.Conv3d, kernel_sizes=topology.kernel_sizes, strides=topology.strides,
                n_conv_per_stage=[1] * n, num_classes=3, n_conv_per_stage_decoder=[1] * (n - 1),
                conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=deep_supervision)


def aniso_net(attention: bool, topology, return_attention_maps: bool = False,
              deep_supervision: bool = True, attention_placement: str = "stage_input") -> AnisoUNet:
    torch.manual_seed(0)
    return AnisoUNet(**unet_kwargs(topology, deep_supervision), attention=attention,
                     return_attention_maps=return_attention_maps, attention_placement=attention_placement).eval()


ANISO = anisotropic_topology([4.0, 0.8, 0.8], [8, 32, 32], max_stages=4)  # 3 in-plane stages, 3D bottleneck


@pytest.mark.parametrize("spacing, patch", [((4.0, 0.8, 0.8), (8, 32, 32)), ((1.0, 1.0, 1.0), (16, 16, 16))])
def test_aniso_unet_shapes(spacing, patch):
    topology = anisotropic_topology(list(spacing), list(patch), max_stages=4)
    outputs = aniso_net(True, topology)(torch.randn(2, 1, *patch))
    assert tuple(outputs[0].shape) == (2, 3, *patch)
    assert len(outputs) == len(topology.kernel_sizes) - 1


def test_attention_output_formula_by_hand():
    """Wang et al.: a = sigmoid(conv(relu(conv(x)))), output x * (1 + a); weights set by hand, 1x1x1 kernels."""
    block = SpatialAttention(nn.Conv3d, channels=2, kernel_size=[1, 1, 1])
    with torch.no_grad():
        block.squeeze.weight.copy_(torch.tensor([0.5, -1.0]).view(1, 2, 1, 1, 1))
        block.squeeze.bias.fill_(0.1)
        block.score.weight.fill_(2.0)
        block.score.bias.fill_(-1.0)
    # two voxels: (1, 2) -> h = relu(0.5 - 2 + 0.1) = 0, a = sigmoid(-1); (4, 1) -> h = relu(2 - 1 + 0.1) = 1.1,
    # a = sigmoid(2 * 1.1 - 1) = sigmoid(1.2)
    x = torch.tensor([[1.0, 4.0], [2.0, 1.0]]).view(1, 2, 1, 1, 2)
    features, attention = block(x)
    a = [1 / (1 + math.exp(1.0)), 1 / (1 + math.exp(-1.2))]
    assert attention.flatten().tolist() == pytest.approx(a)
    assert features.flatten().tolist() == pytest.approx([1 * (1 + a[0]), 4 * (1 + a[1]),
                                                        2 * (1 + a[0]), 1 * (1 + a[1])])


def test_attention_block_defaults_follow_the_paper():
    block = SpatialAttention(nn.Conv3d, channels=8)
    assert block.squeeze.out_channels == 4, "C/2 hidden channels"
    assert block.squeeze.kernel_size == block.score.kernel_size == (3, 3, 3)
    wide = SpatialAttention(nn.Conv3d, channels=8, kernel_size=[1, 5, 5], reduction=4)
    assert wide.squeeze.out_channels == 2
    features, attention = wide(torch.randn(1, 8, 2, 6, 6))
    assert features.shape == (1, 8, 2, 6, 6) and attention.shape == (1, 1, 2, 6, 6), "same padding"


def test_aniso_unet_defaults_and_reduction():
    torch.manual_seed(0)
    net = AnisoUNet(**unet_kwargs(ANISO)).train()
    assert len(net.attention_blocks) == len(ANISO.kernel_sizes), "attention on by default"
    assert isinstance(net(torch.randn(1, 1, 8, 32, 32)), list), "maps returned only when asked"
    bottleneck_channels = net.encoder.output_channels[-1]
    assert net.attention_blocks[0].squeeze.out_channels == bottleneck_channels // 2
    quarter = AnisoUNet(**unet_kwargs(ANISO), attention_reduction=4)
    assert quarter.attention_blocks[0].squeeze.out_channels == bottleneck_channels // 4


def test_without_attention_it_is_nnunets_plain_unet():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    net = aniso_net(False, ANISO)
    plain = PlainConvUNet(**unet_kwargs(ANISO)).eval()
    plain.load_state_dict(net.state_dict())
    x = torch.randn(1, 1, 8, 32, 32)
    for a, b in zip(net(x), plain(x)):
        torch.testing.assert_close(a, b)


def test_attention_at_the_bottleneck_and_every_decoder_stage_with_the_stage_kernel():
    net = aniso_net(True, ANISO)
    n = len(ANISO.kernel_sizes)
    assert len(net.attention_blocks) == n, "bottleneck + one per decoder stage"
    for block, kernel in zip(net.attention_blocks, reversed(ANISO.kernel_sizes)):  # coarsest first
        assert list(block.squeeze.kernel_size) == kernel and list(block.score.kernel_size) == kernel
    assert not len(aniso_net(False, ANISO).attention_blocks)


@pytest.mark.parametrize("placement", ["stage_input", "stage_output"])
@pytest.mark.parametrize("index", range(len(ANISO.kernel_sizes)))
def test_every_attention_block_acts_on_the_output(index, placement):
    """Replacing one block's map by a uniform one or by a spatially varying one changes the segmentation: the block
    is in the path, the bottleneck's (index 0) included. (A uniform map alone could not show it for blocks on a
    stage's input: the instance norm after the next convolution removes a constant factor.)"""
    x = torch.randn(1, 1, 8, 32, 32)
    results = []
    for varying in (False, True):
        net = aniso_net(True, ANISO, attention_placement=placement)
        generator = torch.Generator().manual_seed(1)
        net.attention_blocks[index].attention_map = lambda f, varying=varying: (
            torch.rand((f.shape[0], 1, *f.shape[2:]), generator=generator) if varying
            else torch.full((f.shape[0], 1, *f.shape[2:]), 0.5))
        results.append(net(x)[0])
    assert not torch.allclose(*results, atol=1e-4)


def _record(module: nn.Module, store: dict, name: str) -> None:
    def hook(_, inputs, output):
        store[name] = (inputs[0].detach(), output)
    module.register_forward_hook(hook)


def test_attention_sits_on_the_stage_input_as_in_vs_seg():
    """VS_Seg: the bottleneck attends after its downsampling convolution, before its other convolution; a decoder
    stage attends the concatenation (upsampled features, skip) before its convolutions. Two convolutions per
    stage, as the plans build it."""
    n = len(ANISO.kernel_sizes)
    torch.manual_seed(0)
    net = AnisoUNet(**{**unet_kwargs(ANISO), "n_conv_per_stage": [2] * n, "n_conv_per_stage_decoder": [2] * (n - 1)})
    seen = {}
    bottleneck_convs = net.encoder.stages[-1][-1].convs
    _record(bottleneck_convs[0], seen, "downsampling")
    _record(bottleneck_convs[1], seen, "bottleneck conv")
    _record(net.attention_blocks[0], seen, "bottleneck attention")
    _record(net.decoder.stages[0], seen, "decoder stage")
    _record(net.attention_blocks[1], seen, "decoder attention")
    _record(net.decoder.transpconvs[0], seen, "upsampling")
    net(torch.randn(1, 1, 8, 32, 32))
    torch.testing.assert_close(seen["bottleneck attention"][0], seen["downsampling"][1])
    torch.testing.assert_close(seen["bottleneck conv"][0], seen["bottleneck attention"][1][0])
    attended_input, (features, attention) = seen["decoder attention"]
    skip_channels = net.encoder.output_channels[-2]
    assert attended_input.shape[1] == 2 * skip_channels, "the concatenation"
    torch.testing.assert_close(attended_input[:, :skip_channels], seen["upsampling"][1])
    torch.testing.assert_close(seen["decoder stage"][0], features)
    torch.testing.assert_close(features, attended_input * (1 + attention))


def test_stage_output_placement_attends_after_each_stage():
    net = aniso_net(True, ANISO, attention_placement="stage_output")
    seen = {}
    _record(net.encoder.stages[-1], seen, "bottleneck")
    _record(net.attention_blocks[0], seen, "bottleneck attention")
    _record(net.decoder.stages[0], seen, "decoder stage")
    _record(net.attention_blocks[1], seen, "decoder attention")
    net(torch.randn(1, 1, 8, 32, 32))
    torch.testing.assert_close(seen["bottleneck attention"][0], seen["bottleneck"][1])
    torch.testing.assert_close(seen["decoder attention"][0], seen["decoder stage"][1])
    assert net.attention_blocks[1].squeeze.in_channels == net.encoder.output_channels[-2]
    with pytest.raises(ValueError, match=r"^attention_placement must be one of stage_input, stage_output, got "
                                         r"'after'$"):
        aniso_net(True, ANISO, attention_placement="after")


def test_training_mode_returns_the_attention_maps_and_the_same_segmentation():
    net = aniso_net(True, ANISO, return_attention_maps=True)
    x = torch.randn(2, 1, 8, 32, 32)
    inference = net.eval()(x)
    assert isinstance(inference, list) and not isinstance(inference, AttentionOutput), "nnU-Net's output unchanged"
    training = net.train()(x)
    assert isinstance(training, AttentionOutput)
    for a, b in zip(training.segmentation, inference):
        torch.testing.assert_close(a, b)  # instance norm, no dropout: train and eval compute the same
    # highest resolution first, the bottleneck's last; one channel in [0, 1]
    assert [tuple(m.shape) for m in training.attention_maps] == [(2, 1, 8, 32, 32), (2, 1, 8, 16, 16),
                                                                 (2, 1, 8, 8, 8), (2, 1, 8, 4, 4)]
    assert all(0 <= m.min() and m.max() <= 1 for m in training.attention_maps)
    without_ds = aniso_net(True, ANISO, return_attention_maps=True, deep_supervision=False).train()(x)
    torch.testing.assert_close(without_ds.segmentation, inference[0])


def test_attention_maps_are_not_returned_unless_asked():
    net = aniso_net(True, ANISO).train()
    assert isinstance(net(torch.randn(1, 1, 8, 32, 32)), list)
    with pytest.raises(ValueError, match=r"^return_attention_maps=True needs attention=True \(a network without "
                                         r"attention has no attention maps\)$"):
        aniso_net(False, ANISO, return_attention_maps=True)


def test_slice_z_depends_on_slice_z_plus_one():
    net = aniso_net(True, ANISO)
    x = torch.randn(1, 1, 8, 32, 32)
    changed = x.clone()
    changed[:, :, 4] += 1.0
    assert not torch.allclose(net(x)[0][:, :, 3], net(changed)[0][:, :, 3])


def test_trainer_adds_the_attention_loss_to_nnunets_loss(nnunet, tiny_dataset, monkeypatch):
    """The real trainer, nnU-Net's own train_step: the loss it optimises is nnU-Net's deep-supervised loss plus the
    attention Dice; validation (eval mode) sees nnU-Net's output; the ablation trains without the attention term."""
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    from nnunet_25d.losses.hardness_attention import AttentionDiceLoss, AttentionSupervisedLoss
    from nnunet_25d.trainers.aniso_trainer import nnUNetTrainer25DAniso, nnUNetTrainer25DAniso_NoAttentionLoss

    trainer = nnunet.trainer(tiny_dataset, nnUNetTrainer25DAniso, "2d", monkeypatch)
    assert isinstance(trainer.loss, AttentionSupervisedLoss)
    patch = trainer.configuration_manager.patch_size
    torch.manual_seed(0)
    data = torch.randn(2, 1, *patch)
    full = torch.randint(0, 3, (2, 1, *patch)).float()
    target = [full[(...,) + tuple(slice(None, None, round(1 / s)) for s in scale)]
              for scale in trainer._get_deep_supervision_scales()]
    trainer.network.train()
    with torch.no_grad():
        output = trainer.network(data)
        segmentation = DeepSupervisionWrapper(trainer.loss.loss, trainer.loss.weight_factors)(output.segmentation,
                                                                                               target)
        attention = AttentionDiceLoss(batch_dice=trainer.configuration_manager.batch_dice)(output.attention_maps,
                                                                                          full)
    assert len(output.attention_maps) == len(trainer.configuration_manager.network_arch_init_kwargs["strides"])
    assert trainer.train_step({"data": data, "target": target})["loss"] == pytest.approx(
        (segmentation + attention).item(), rel=1e-5)
    trainer.network.eval()
    assert trainer.validation_step({"data": data, "target": [t.clone() for t in target]})["loss"].shape == ()

    ablation = nnunet.trainer(tiny_dataset, nnUNetTrainer25DAniso_NoAttentionLoss, "2d", monkeypatch)
    assert type(ablation.loss) is DeepSupervisionWrapper
    assert isinstance(ablation.network.train()(data), list)


def test_attention_placement_reaches_the_plans_and_the_network(nnunet, tiny_dataset, monkeypatch):
    from nnunet_25d.trainers.aniso_trainer import nnUNetTrainer25DAniso, nnUNetTrainer25DAniso_AttentionAfterStage

    for trainer_class, placement in ((nnUNetTrainer25DAniso, "stage_input"),
                                     (nnUNetTrainer25DAniso_AttentionAfterStage, "stage_output")):
        trainer = nnunet.trainer(tiny_dataset, trainer_class, "2d", monkeypatch)
        kwargs = trainer.configuration_manager.network_arch_init_kwargs
        assert kwargs["attention_placement"] == placement
        assert trainer.network.attention_placement == placement
