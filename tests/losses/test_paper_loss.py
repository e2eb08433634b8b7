"""nnUNetTrainer25DAniso_PaperLoss builds Wang et al.'s loss as VS_Seg computes it (params/losses/dice_spvPA.py):
softmax Dice over every class with the background, hardness weights 0.6 |p - g| + 0.4 (with their gradient), per
case, smooth 1e-5, no cross-entropy, no deep supervision; plus the attention Dice."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nnunet_25d.architectures.aniso_unet import AttentionOutput
from nnunet_25d.errors import SetupError
from nnunet_25d.losses.hardness_attention import AttentionSupervisedLoss, HardnessWeightedDiceLoss
from nnunet_25d.trainers.aniso_trainer import nnUNetTrainer25DAniso_PaperLoss


def built_loss(attention: bool = True, regions: bool = False, ignore_label=None):
    """The trainer's own _build_loss on the attributes it reads (a trainer needs preprocessed data to exist)."""
    trainer = SimpleNamespace(
        label_manager=SimpleNamespace(has_regions=regions, ignore_label=ignore_label), is_ddp=False,
        supervises_attention=attention, attention_loss_weight=1.0, hardness=0.6, smooth=1e-5)
    return nnUNetTrainer25DAniso_PaperLoss._build_loss(trainer)


def vs_seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """VS_Seg's prediction loss written from its equations: 1 - mean over cases and classes (background included)
    of (2 sum w p g + s) / (sum w g + sum w p + s), w = 0.6 |p - g| + 0.4, p = softmax(logits), s = 1e-5."""
    p = torch.softmax(logits, 1)
    g = torch.zeros_like(p).scatter_(1, target.long(), 1)
    w = 0.6 * (p - g).abs() + 0.4
    axes = tuple(range(2, p.ndim))
    dice = (2 * (w * p * g).sum(axes) + 1e-5) / ((w * g).sum(axes) + (w * p).sum(axes) + 1e-5)
    return 1 - dice.mean()


def test_the_paper_loss_is_vs_segs_value_and_gradient_without_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 6, 5, requires_grad=True)
    target = torch.randint(0, 3, (2, 1, 4, 6, 5))
    loss = built_loss(attention=False)
    assert isinstance(loss, HardnessWeightedDiceLoss), "the Dice alone: no cross-entropy, no deep supervision"
    assert loss.do_bg and not loss.batch_dice and loss.smooth == 1e-5 and loss.weight_gradient
    ours = loss(logits, target)
    expected = vs_seg_loss(logits, target)
    torch.testing.assert_close(ours + 1, expected)  # nnU-Net's Dice returns -Dice, VS_Seg's 1 - Dice
    ours_grad, = torch.autograd.grad(ours, logits)
    expected_grad, = torch.autograd.grad(vs_seg_loss(logits, target), logits)
    torch.testing.assert_close(ours_grad, expected_grad)


def test_the_background_counts():
    """A prediction perfect on the foreground and wrong on part of the background still costs something."""
    target = torch.zeros(1, 1, 1, 4, 4)
    target[..., :2, :2] = 1
    logits = torch.zeros(1, 2, 1, 4, 4)
    logits[:, 1][target[:, 0] == 1] = 20.0
    logits[:, 0][target[:, 0] == 0] = 20.0
    perfect = built_loss(attention=False)(logits, target)
    logits[:, 0, :, 3, 3], logits[:, 1, :, 3, 3] = -20.0, 20.0  # one background voxel called foreground
    assert built_loss(attention=False)(logits, target) > perfect


def test_the_attention_dice_is_added_with_weight_one():
    loss = built_loss(attention=True)
    assert isinstance(loss, AttentionSupervisedLoss) and not loss.deep_supervision
    assert isinstance(loss.loss, HardnessWeightedDiceLoss) and loss.auxiliary_weight == 1.0
    torch.manual_seed(1)
    logits = torch.randn(2, 2, 4, 8, 8)
    target = torch.randint(0, 2, (2, 1, 4, 8, 8))
    maps = [torch.rand(2, 1, 4, 4, 4), torch.rand(2, 1, 4, 8, 8)]
    total = loss(AttentionOutput(logits, maps), target)
    torch.testing.assert_close(total, loss.loss(logits, target) + loss.auxiliary_loss(maps, target))


@pytest.mark.parametrize("regions, ignore", [(True, None), (False, 3)])
def test_regions_and_ignore_labels_are_refused_with_the_alternative(regions, ignore):
    with pytest.raises(SetupError, match="train nnUNetTrainer25DAniso_HardnessDice on this dataset"):
        built_loss(regions=regions, ignore_label=ignore)


def test_there_is_no_border_loss_variant():
    from nnunet_25d.trainers.registry import TRAINERS

    assert "nnUNetTrainer25DAniso_PaperLoss" in TRAINERS
    assert "nnUNetTrainer25DAniso_PaperLoss_BorderLoss" not in TRAINERS, "no cross-entropy to re-weight"


@pytest.mark.integration
def test_the_trainer_built_by_nnunet_trains_its_full_resolution_output_with_the_paper_loss(nnunet, tiny_dataset,
                                                                                           monkeypatch):
    """On the tiny dataset's plans (a thin slab of its 2d data): deep supervision off, the network's training
    output one full-resolution map with its attention maps, the loss VS_Seg's, one backward step through it."""
    import json

    nnunet.set_environ(monkeypatch)
    plans = nnunet.plans(tiny_dataset)
    plans["continue_training"] = False
    dataset_json = json.loads((nnunet.preprocessed / tiny_dataset / "dataset.json").read_text())
    trainer = nnUNetTrainer25DAniso_PaperLoss(plans, "2d", 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    assert trainer.enable_deep_supervision is False
    assert isinstance(trainer.loss, AttentionSupervisedLoss) and isinstance(trainer.loss.loss, HardnessWeightedDiceLoss)
    patch = trainer.configuration_manager.patch_size
    x = torch.randn(2, 1, *patch)
    target = torch.randint(0, 3, (2, 1, *patch))
    output = trainer.network.train()(x)
    assert isinstance(output, AttentionOutput) and isinstance(output.segmentation, torch.Tensor)
    assert output.segmentation.shape == (2, 3, *patch)
    loss = trainer.loss(output, target)
    loss.backward()
    expected = vs_seg_loss(output.segmentation, target) - 1 + trainer.loss.auxiliary_loss(output[1], target)
    torch.testing.assert_close(loss, expected)


@pytest.mark.integration
def test_the_paper_loss_trainer_trains_and_validates_through_nnunet(nnunet, tiny_dataset):
    trainer = "nnUNetTrainer25DAniso_PaperLoss_2epochs_5iters"
    nnunet.run("nnUNetv2_train", "971", "2d", "0", "-tr", trainer, "-device", "cpu", training=True)
    fold = nnunet.model_folder(tiny_dataset, trainer) / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "validation" / "summary.json").is_file()
