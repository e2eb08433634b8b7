"""The losses of Wang et al. (MICCAI 2019): hardness-weighted Dice (voxels the network gets wrong count more) and
attention supervision (every spatial-attention map is pulled towards the downsampled foreground)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.ddp_allgather import AllGatherGrad
from torch import nn

from nnunet_25d.architectures.aniso_unet import AttentionOutput
from nnunet_25d.losses.auxiliary import AuxiliarySupervisedLoss


class HardnessWeightedDiceLoss(MemoryEfficientSoftDiceLoss):
    """Soft Dice in which voxel i of class c has weight ``w = hardness * |p_ic - g_ic| + (1 - hardness)``.

    ``hardness = 0`` is nnU-Net's MemoryEfficientSoftDiceLoss. ``weight_gradient`` (default, as the group's VS_Seg
    code computes it): the gradient flows through the weights too; False treats them as constants. The paper's
    equation leaves this open. Drop-in for ``DC_and_CE_loss(dice_class=...)``.
    """

    def __init__(self, apply_nonlin: Callable | None = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = 1.0, ddp: bool = True, hardness: float = 0.6, weight_gradient: bool = True):
        super().__init__(apply_nonlin=None, batch_dice=batch_dice, do_bg=do_bg, smooth=smooth, ddp=ddp)
        if not 0.0 <= hardness <= 1.0:
            raise ValueError(f"hardness must lie in [0, 1], got {hardness}")
        self.probabilities = apply_nonlin
        self.hardness = hardness
        self.weight_gradient = weight_gradient

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
        probs = self.probabilities(x) if self.probabilities is not None else x
        with torch.no_grad():
            labels = y.view(y.shape[0], 1, *y.shape[1:]) if y.ndim != probs.ndim else y
            onehot = labels.float() if labels.shape == probs.shape else \
                torch.zeros_like(probs).scatter_(1, labels.long(), 1)
        weighed = probs if self.weight_gradient else probs.detach()
        weight = self.hardness * (weighed - onehot).abs() + (1.0 - self.hardness)
        if not self.do_bg:
            probs, onehot, weight = probs[:, 1:], onehot[:, 1:], weight[:, 1:]
        if loss_mask is not None:
            weight = weight * loss_mask
        # nnU-Net's soft Dice computes the reference's sum without gradient; here it carries the weights' gradient
        axes = tuple(range(2, probs.ndim))
        sums = [(weight * probs * onehot).sum(axes), (weight * probs).sum(axes), (weight * onehot).sum(axes)]
        if self.batch_dice:
            sums = [(AllGatherGrad.apply(t) if self.ddp else t[None]).sum((0, 1)) for t in sums]
        intersect, sum_pred, sum_gt = sums
        dice = (2 * intersect + self.smooth) / (sum_gt + sum_pred + self.smooth).clamp_min(1e-8)
        return -dice.mean()


def foreground_and_labelled(target: torch.Tensor, ignore_label: int | None,
                            has_regions: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(foreground, labelled) as float (N, 1, *spatial) maps from nnU-Net's full-resolution target.

    Foreground: any label but background (label maps) or any region (region targets, whose last channel is the
    ignore mask when there is an ignore label). Labelled: voxels not carrying the ignore label (None without one);
    ignored voxels may count as foreground here, the loss masks them out.
    """
    if has_regions:
        regions = target[:, :-1] if ignore_label is not None else target
        labelled = 1 - target[:, -1:].float() if ignore_label is not None else None
        return (regions > 0).any(1, keepdim=True).float(), labelled
    labelled = None if ignore_label is None else (target != ignore_label).float()
    return (target > 0).float(), labelled


def max_pool_to(volume: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """``volume`` (N, C, *spatial) max-pooled in blocks down to ``spatial_shape``: a block is 1 if any voxel is
    (as the group's VS_Seg code downsamples the ground truth; a small structure never vanishes at coarse levels)."""
    full, small = volume.shape[2:], tuple(spatial_shape)
    if any(f % s for f, s in zip(full, small)):
        raise ValueError(f"attention map of spatial shape {small} does not tile the target's {tuple(full)}: the "
                         f"patch size must be divisible by the network's total stride along every axis")
    block = [f // s for f, s in zip(full, small)]
    return getattr(F, f"max_pool{len(block)}d")(volume, kernel_size=block)  # stride = kernel: disjoint blocks


class AttentionDiceLoss(nn.Module):
    """Mean over attention maps of ``1 - Dice(map, foreground max-pooled to the map's grid)`` (Wang et al.: every
    attention map supervised by the downsampled ground truth, equal weights as in VS_Seg).

    The Dice is nnU-Net's soft Dice (:class:`MemoryEfficientSoftDiceLoss` on the single-channel map, so
    ``batch_dice``, ``smooth`` and DDP gathering behave as in nnU-Net's own Dice term). With an ignore label, only
    blocks without ignored voxels count.
    """

    def __init__(self, batch_dice: bool = False, smooth: float = 1e-5, ddp: bool = False,
                 ignore_label: int | None = None, has_regions: bool = False):
        super().__init__()
        self.dice = MemoryEfficientSoftDiceLoss(batch_dice=batch_dice, do_bg=True, smooth=smooth, ddp=ddp)
        self.ignore_label, self.has_regions = ignore_label, has_regions

    def forward(self, attention_maps: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            foreground, labelled = foreground_and_labelled(target, self.ignore_label, self.has_regions)
        losses = []
        for attention in attention_maps:
            grid = attention.shape[2:]
            with torch.no_grad():
                block_foreground = max_pool_to(foreground, grid)
                # a block counts only if all its voxels are labelled: min-pool = -max-pool(-x)
                block_labelled = None if labelled is None else -max_pool_to(-labelled, grid)
            losses.append(1 + self.dice(attention, block_foreground, loss_mask=block_labelled))
        return torch.stack(losses).mean()


class AttentionSupervisedLoss(AuxiliarySupervisedLoss):
    """nnU-Net's deep-supervised segmentation loss plus ``attention_weight`` x ``attention_loss`` on the attention
    maps of an :class:`AttentionOutput` (the paper's total loss with weight 1, as in VS_Seg)."""

    output_type = AttentionOutput

    def __init__(self, loss: nn.Module, weight_factors: Sequence[float] | None, attention_loss: nn.Module,
                 attention_weight: float = 1.0):
        super().__init__(loss, weight_factors, attention_loss, attention_weight)
