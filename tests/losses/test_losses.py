import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_25d.architectures.aniso_unet import AttentionOutput
from nnunet_25d.losses.hardness_attention import AttentionDiceLoss, AttentionSupervisedLoss, HardnessWeightedDiceLoss, max_pool_to

KWARGS = {"batch_dice": True, "do_bg": False, "smooth": 1e-5, "ddp": False}


def test_hardness_zero_is_nnunets_dice():
    x, y = torch.randn(2, 3, 4, 8, 8), torch.randint(0, 3, (2, 1, 4, 8, 8))
    plain = MemoryEfficientSoftDiceLoss(softmax_helper_dim1, **KWARGS)(x, y)
    assert torch.allclose(HardnessWeightedDiceLoss(softmax_helper_dim1, hardness=0.0, **KWARGS)(x, y), plain)
    assert not torch.allclose(HardnessWeightedDiceLoss(softmax_helper_dim1, hardness=0.6, **KWARGS)(x, y), plain)


def test_wrong_voxels_get_more_gradient_than_with_plain_dice():
    y = torch.zeros(1, 1, 1, 4, 4, dtype=torch.long)
    y[..., :2, :] = 1
    x = torch.zeros(1, 2, 1, 4, 4)
    x[:, 1, ..., :2, :] = 3.0  # right where the label is 1
    x[:, 1, ..., 2, 0] = 3.0  # one confidently wrong voxel
    gradients = {}
    for name, loss in (("plain", HardnessWeightedDiceLoss(softmax_helper_dim1, hardness=0.0, **KWARGS)),
                       ("hard", HardnessWeightedDiceLoss(softmax_helper_dim1, hardness=0.9, **KWARGS))):
        logits = x.clone().requires_grad_()
        loss(logits, y).backward()
        g = logits.grad[0, 1, 0].abs()
        gradients[name] = g[2, 0] / g[0, 0]  # wrong voxel relative to a right one
    assert gradients["hard"] > gradients["plain"]


def test_hardness_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        HardnessWeightedDiceLoss(hardness=1.5)
    assert HardnessWeightedDiceLoss(hardness=1.0).hardness == 1.0
    assert HardnessWeightedDiceLoss().hardness == 0.6, "the paper's lambda"


def test_defaults_are_nnunets_dice():
    x, y = torch.randn(2, 3, 4, 8, 8), torch.randint(0, 3, (2, 1, 4, 8, 8))
    plain = MemoryEfficientSoftDiceLoss(softmax_helper_dim1, ddp=False)(x, y)
    torch.testing.assert_close(HardnessWeightedDiceLoss(softmax_helper_dim1, ddp=False, hardness=0.0)(x, y), plain)


def test_hardness_dice_accepts_every_target_layout_and_masks():
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 3, 4, 4), torch.randint(0, 3, (2, 1, 3, 4, 4))
    loss = HardnessWeightedDiceLoss(softmax_helper_dim1, **KWARGS)
    reference = loss(x, y)
    torch.testing.assert_close(loss(x, y[:, 0]), reference)  # no channel axis
    torch.testing.assert_close(loss(x, torch.zeros_like(x).scatter_(1, y, 1)), reference)  # one-hot
    mask = torch.ones_like(y, dtype=torch.float32)
    mask[..., -1] = 0  # as DC_and_CE_loss passes an ignore mask: the last column counts nowhere
    torch.testing.assert_close(loss(x, y, loss_mask=mask), loss(x[..., :-1], y[..., :-1]))


def test_hardness_weighted_dice_by_hand():
    """Wang et al.'s eq.: w = lambda |p - g| + (1 - lambda), Dice = 2 sum(w p g) / sum(w (p + g)), here lambda = 0.5,
    foreground class only, probabilities given directly."""
    p1 = torch.tensor([0.9, 0.2, 0.6, 0.1])  # class 1; class 0 = 1 - p1
    probs = torch.stack([1 - p1, p1]).view(1, 2, 1, 1, 4)
    labels = torch.tensor([1, 1, 0, 0]).view(1, 1, 1, 1, 4)
    loss = HardnessWeightedDiceLoss(None, batch_dice=False, do_bg=False, smooth=0.0, ddp=False, hardness=0.5)
    # |p - g| = 0.1, 0.8, 0.6, 0.1 -> w = 0.55, 0.9, 0.8, 0.55
    numerator = 2 * (0.55 * 0.9 + 0.9 * 0.2)  # 1.35
    denominator = 0.55 * (0.9 + 1) + 0.9 * (0.2 + 1) + 0.8 * 0.6 + 0.55 * 0.1  # 2.66
    assert loss(probs, labels).item() == pytest.approx(-numerator / denominator)  # nnU-Net's Dice loss is -Dice


@pytest.mark.parametrize("weight_gradient", [True, False])
def test_hardness_gradient_is_the_formulas_with_or_without_the_weights(weight_gradient):
    """The gradient equals that of the formula written out, w from the probabilities themselves (VS_Seg, the
    default: the gradient also flows through w, in the reference's sum too) or from detached ones."""
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 2, 4, 4), torch.randint(0, 3, (2, 1, 2, 4, 4))
    logits = x.clone().requires_grad_()
    loss = HardnessWeightedDiceLoss(softmax_helper_dim1, hardness=0.6, **KWARGS) if weight_gradient else \
        HardnessWeightedDiceLoss(softmax_helper_dim1, hardness=0.6, weight_gradient=False, **KWARGS)
    loss(logits, y).backward()

    reference = x.clone().requires_grad_()
    probs = torch.softmax(reference, 1)
    onehot = torch.zeros_like(probs).scatter_(1, y, 1)
    w = 0.6 * ((probs if weight_gradient else probs.detach()) - onehot).abs() + 0.4
    axes = (0, 2, 3, 4)  # batch Dice
    dice = (2 * (w * probs * onehot).sum(axes) + 1e-5) / ((w * (probs + onehot)).sum(axes) + 1e-5)
    (-dice[1:].mean()).backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_the_two_gradients_differ_and_the_default_follows_vs_seg():
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 2, 4, 4), torch.randint(0, 3, (2, 1, 2, 4, 4))
    grads = []
    for weight_gradient in (True, False):
        logits = x.clone().requires_grad_()
        HardnessWeightedDiceLoss(softmax_helper_dim1, weight_gradient=weight_gradient, **KWARGS)(logits, y).backward()
        grads.append(logits.grad)
    assert not torch.allclose(*grads)
    assert HardnessWeightedDiceLoss().weight_gradient is True


def test_per_case_hardness_dice_averages_the_cases():
    """Without batch Dice each case has its own Dice (hardness 0: nnU-Net's per-case soft Dice)."""
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 2, 4, 4), torch.randint(0, 3, (2, 1, 2, 4, 4))
    per_case = HardnessWeightedDiceLoss(softmax_helper_dim1, batch_dice=False, do_bg=False, smooth=1e-5, ddp=False,
                                        hardness=0.0)(x, y)
    plain = MemoryEfficientSoftDiceLoss(softmax_helper_dim1, batch_dice=False, do_bg=False, smooth=1e-5,
                                        ddp=False)(x, y)
    torch.testing.assert_close(per_case, plain)


def attention_target() -> torch.Tensor:
    """One case, 1 x 2 x 4: labels 1 and 2 are both foreground."""
    return torch.tensor([[0, 1, 0, 0], [0, 0, 2, 0]]).view(1, 1, 1, 2, 4)


def test_attention_supervision_by_hand():
    """Mean over maps of 1 - Dice(map, foreground max-pooled to the map's grid)."""
    full = torch.tensor([[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]]).view(1, 1, 1, 2, 4)
    half = torch.tensor([0.25, 1.0]).view(1, 1, 1, 1, 2)  # 2x2 in-plane blocks: foreground [1, 1]
    bottleneck = torch.tensor([0.5]).view(1, 1, 1, 1, 1)  # one block: foreground 1
    loss = AttentionDiceLoss(batch_dice=False, smooth=0.0)
    dice_full = 2 * (1.0 + 0.5) / (2.0 + 2)  # 0.75
    dice_half = 2 * (0.25 + 1.0) / (1.25 + 2)  # 0.769
    dice_bottleneck = 2 * 0.5 / (0.5 + 1)  # 0.667
    expected = ((1 - dice_full) + (1 - dice_half) + (1 - dice_bottleneck)) / 3
    assert loss([full, half, bottleneck], attention_target()).item() == pytest.approx(expected)


def test_attention_supervision_leaves_ignored_voxels_out():
    target = attention_target()
    target[0, 0, 0, 1, 2] = 3  # the ignore label
    attention = torch.tensor([[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]]).view(1, 1, 1, 2, 4)
    loss = AttentionDiceLoss(batch_dice=False, smooth=0.0, ignore_label=3)
    dice = 2 * 1.0 / (1.5 + 1)  # the ignored voxel's 0.5 counts nowhere
    assert loss([attention], target).item() == pytest.approx(1 - dice)


def test_attention_supervision_defaults_per_case_dice_and_batch_dice():
    """Defaults: Dice per case (then averaged), smooth 1e-5; batch_dice pools the cases' sums first."""
    target = torch.cat([attention_target(), torch.zeros(1, 1, 1, 2, 4, dtype=torch.long)])  # case 2: empty
    attention = torch.tensor([[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]]).view(1, 1, 1, 2, 4).repeat(2, 1, 1, 1, 1)
    eps = 1e-5
    per_case = [(2 * 1.5 + eps) / (2.0 + 2 + eps), (0 + eps) / (2.0 + 0 + eps)]
    assert AttentionDiceLoss()([attention], target).item() == pytest.approx(1 - sum(per_case) / 2)
    batch = (2 * 1.5 + eps) / (4.0 + 2 + eps)
    assert AttentionDiceLoss(batch_dice=True)([attention], target).item() == pytest.approx(1 - batch)


def test_attention_supervision_with_regions():
    regions = torch.zeros(1, 2, 1, 2, 4)
    regions[0, 0, 0, 0, 1] = 1
    regions[0, 1, 0, 1, 2] = 1
    attention = torch.tensor([[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]]).view(1, 1, 1, 2, 4)
    loss = AttentionDiceLoss(batch_dice=False, smooth=0.0, has_regions=True)
    assert loss([attention], regions).item() == pytest.approx(0.25)


def test_attention_supervision_with_regions_and_ignore_channel():
    regions = torch.zeros(1, 3, 1, 2, 4)  # two regions, then nnU-Net's ignore channel
    regions[0, 0, 0, 0, 1] = 1
    regions[0, 1, 0, 1, 2] = 1
    regions[0, 2, 0, 1, 3] = 1  # an ignored voxel, where the map says 0.5
    attention = torch.tensor([[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]).view(1, 1, 1, 2, 4)
    loss = AttentionDiceLoss(batch_dice=False, smooth=0.0, ignore_label=3, has_regions=True)
    assert loss([attention], regions).item() == pytest.approx(1 - 2 * 1.5 / (2.0 + 2))


def test_max_pool_to_in_2d_and_3d():
    plane = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).view(1, 1, 2, 4)
    assert max_pool_to(plane, (1, 2)).flatten().tolist() == [1.0, 0.0]
    assert max_pool_to(plane[:, :, None], (1, 1, 2)).flatten().tolist() == [1.0, 0.0]


def test_attention_map_must_tile_the_target():
    with pytest.raises(ValueError, match="does not tile"):
        AttentionDiceLoss()([torch.rand(1, 1, 1, 1, 3)], attention_target())


def test_attention_supervised_loss_adds_the_attention_term_in_training_only():
    torch.manual_seed(0)
    segmentation = [torch.randn(2, 3, 2, 8, 8), torch.randn(2, 3, 2, 4, 4)]
    target = [torch.randint(0, 3, (2, 1, 2, 8, 8)), torch.randint(0, 3, (2, 1, 2, 4, 4))]
    maps = [torch.rand(2, 1, 2, 8, 8), torch.rand(2, 1, 2, 4, 4), torch.rand(2, 1, 1, 2, 2)]
    compound = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                              dice_class=MemoryEfficientSoftDiceLoss)
    attention = AttentionDiceLoss(batch_dice=True)
    nnunet_loss = DeepSupervisionWrapper(compound, (2 / 3, 1 / 3))
    loss = AttentionSupervisedLoss(compound, (2 / 3, 1 / 3), attention, attention_weight=0.5)
    expected = nnunet_loss(segmentation, target) + 0.5 * attention(maps, target[0])
    torch.testing.assert_close(loss(AttentionOutput(segmentation, maps), target), expected)
    torch.testing.assert_close(loss(segmentation, target), nnunet_loss(segmentation, target))  # eval: no maps
    assert loss.loss is compound, "nnU-Net's compound loss stays reachable as .loss"
    single = AttentionSupervisedLoss(compound, None, attention)  # no deep supervision: one output, one target
    torch.testing.assert_close(single(AttentionOutput(segmentation[0], maps), target[0]),
                               compound(segmentation[0], target[0]) + attention(maps, target[0]))
