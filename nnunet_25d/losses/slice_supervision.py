"""Ψ-Net's multi-level training: a class-balanced pixel loss and a slice-level "contains the class" task."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_25d.architectures.blocks.slice_output import SliceOutput
from nnunet_25d.losses.auxiliary import AuxiliarySupervisedLoss


def labels_of(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(N, *spatial) long labels from a target shaped (N, 1, *spatial) or (N, *spatial)."""
    return (target[:, 0] if target.ndim == logits.ndim else target).long()


class ClassBalancedCrossEntropy(nn.Module):
    """Cross-entropy in which every class present in the target counts the same: the mean, over the classes
    present, of each class's mean voxel cross-entropy (weights 1 / voxel count of the class, computed on each
    target it is given, so on each deep-supervision scale). Voxels of ``ignore_index`` take no part.
    Drop-in for nnU-Net's ``DC_and_CE_loss.ce``."""

    def __init__(self, ignore_index: int | None = None):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels = labels_of(target, logits)
        ignore = -100 if self.ignore_index is None else self.ignore_index
        counted = labels[labels != ignore]
        counts = torch.bincount(counted.flatten(), minlength=logits.shape[1])[:logits.shape[1]].to(logits.dtype)
        weights = torch.where(counts > 0, 1 / counts.clamp_min(1), torch.zeros_like(counts))
        return F.cross_entropy(logits, labels, weight=weights, ignore_index=ignore)


def slice_presence(target: torch.Tensor, n_outputs: int) -> torch.Tensor:
    """(B, n_outputs, *leading) float: 1 where label c + 1 occurs in the in-plane slice (the last two axes) of a
    label target (B, 1, *leading, H, W)."""
    labels = target[:, 0]
    return torch.stack([(labels == c + 1).flatten(-2).any(-1) for c in range(n_outputs)], dim=1).float()


class SlicePresenceLoss(nn.Module):
    """Binary cross-entropy of a :class:`SliceOutput`'s slice logits (B, K', D) against :func:`slice_presence` of
    the full-resolution label target (B, 1, D, H, W)."""

    def forward(self, slice_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            presence = slice_presence(target, slice_logits.shape[1])
        return F.binary_cross_entropy_with_logits(slice_logits, presence)


class SliceSupervisedLoss(AuxiliarySupervisedLoss):
    """nnU-Net's segmentation loss + ``auxiliary_weight`` x :class:`SlicePresenceLoss` on a :class:`SliceOutput`."""

    output_type = SliceOutput
