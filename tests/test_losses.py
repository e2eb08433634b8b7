import pytest
import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_25d.losses import HardnessWeightedDiceLoss

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
