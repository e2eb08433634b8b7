"""Hardness-weighted Dice (Wang et al., MICCAI 2019): voxels the network gets wrong count more."""
from __future__ import annotations

from typing import Callable

import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss


class HardnessWeightedDiceLoss(MemoryEfficientSoftDiceLoss):
    """Soft Dice in which voxel i of class c has weight ``w = hardness * |p_ic - g_ic| + (1 - hardness)``.

    ``hardness = 0`` is nnU-Net's MemoryEfficientSoftDiceLoss. The weights are treated as constants (no gradient
    flows through them). Drop-in for ``DC_and_CE_loss(dice_class=...)``.
    """

    def __init__(self, apply_nonlin: Callable | None = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = 1.0, ddp: bool = True, hardness: float = 0.6):
        super().__init__(apply_nonlin=None, batch_dice=batch_dice, do_bg=do_bg, smooth=smooth, ddp=ddp)
        if not 0.0 <= hardness <= 1.0:
            raise ValueError(f"hardness must lie in [0, 1], got {hardness}")
        self.probabilities = apply_nonlin
        self.hardness = hardness

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
        probs = self.probabilities(x) if self.probabilities is not None else x
        with torch.no_grad():
            labels = y.view(y.shape[0], 1, *y.shape[1:]) if y.ndim != probs.ndim else y
            onehot = labels if labels.shape == probs.shape else \
                torch.zeros_like(probs).scatter_(1, labels.long(), 1)
            weight = self.hardness * (probs - onehot).abs() + (1.0 - self.hardness)
            if not self.do_bg:
                weight = weight[:, 1:]
            if loss_mask is not None:
                weight = weight * loss_mask
        return super().forward(probs, y, loss_mask=weight)
