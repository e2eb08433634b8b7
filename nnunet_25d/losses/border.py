"""Border-weighted cross-entropy: voxels near a label border count more (the ``_BorderLoss`` trainer variants).

Every voxel within ``width`` voxels of a border between two labels gets weight ``1 + border_weight`` in the
cross-entropy, every other voxel 1. With ``border_weight = 0`` this is nnU-Net's cross-entropy exactly. This is a
loss of this project, not Ψ-Net (Kuang et al., CMPB 2020: attention blocks and a multi-level training, see
:mod:`nnunet_25d.architectures.psi_net`); where most foreground voxels lie near a border (80 % on the synthetic
data) it mostly re-weights the foreground.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_width(width: int) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"border width must be a whole number of voxels >= 1, got {width!r}")
    return width


def _local_extremes(labels: torch.Tensor, width: int, in_plane: bool,
                    ignore: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest and smallest label within a (2w+1)-wide window (in-plane: 1 x (2w+1) x (2w+1)) of every voxel of
    (N, 1, D, H, W) ``labels``; ignored voxels and the outside of the patch take part in neither."""
    kernel = (1 if in_plane else 2 * width + 1, 2 * width + 1, 2 * width + 1)
    padding = tuple(k // 2 for k in kernel)
    for_max, for_min = labels, labels
    if ignore is not None:
        for_max = labels.masked_fill(ignore, float("-inf"))
        for_min = labels.masked_fill(ignore, float("inf"))
    local_max = F.max_pool3d(for_max, kernel, stride=1, padding=padding)
    local_min = -F.max_pool3d(-for_min, kernel, stride=1, padding=padding)
    return local_max, local_min


def border_band(target: torch.Tensor, width: int, in_plane: bool = True, ignore_label: int | None = None
                ) -> torch.Tensor:
    """Boolean map of the voxels within Chebyshev distance ``width`` of a voxel with another label (both sides of
    every border), shaped like ``target`` ((N, 1, *spatial) or (N, *spatial), 2D or 3D). ``in_plane``: borders
    within each slice only (axis 0 of a 3D patch is the slice axis)."""
    check_width(width)
    spatial = target.shape[2:] if target.ndim >= 4 and target.shape[1] == 1 else target.shape[1:]
    labels = target.reshape(target.shape[0], 1, *([1] * (3 - len(spatial))), *spatial).float()
    ignore = labels == ignore_label if ignore_label is not None else None
    local_max, local_min = _local_extremes(labels, width, in_plane, ignore)
    band = local_max > local_min
    if ignore is not None:
        band &= ~ignore
    return band.reshape(target.shape)


def border_weights(target: torch.Tensor, width: int, border_weight: float, in_plane: bool = True,
                   ignore_label: int | None = None) -> torch.Tensor:
    """``1 + border_weight`` on the :func:`border_band`, 1 elsewhere (float, shaped like ``target``)."""
    return 1.0 + border_weight * border_band(target, width, in_plane, ignore_label).float()


class BorderWeightedCrossEntropy(nn.Module):
    """Cross-entropy of logits (N, K, *spatial) against labels (N, *spatial) or (N, 1, *spatial), each voxel
    weighted by :func:`border_weights` of the labels, summed and divided by the number of non-ignored voxels
    (nnU-Net's mean). Drop-in for ``DC_and_CE_loss.ce``; under ``DeepSupervisionWrapper`` each output's border is
    found in its own (downsampled) target, so ``width`` counts voxels of that output.
    """

    def __init__(self, width: int = 2, border_weight: float = 4.0, in_plane: bool = True,
                 ignore_index: int | None = None):
        super().__init__()
        if border_weight < 0:
            raise ValueError(f"border weight must be >= 0 (0: plain cross-entropy), got {border_weight}")
        self.width, self.border_weight = check_width(width), border_weight
        self.in_plane, self.ignore_index = in_plane, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == logits.ndim:
            target = target[:, 0]
        target = target.long()
        with torch.no_grad():
            weights = border_weights(target, self.width, self.border_weight, self.in_plane, self.ignore_index)
        if self.ignore_index is None:
            per_voxel = F.cross_entropy(logits, target, reduction="none")
            return (weights * per_voxel).sum() / target.numel()
        per_voxel = F.cross_entropy(logits, target, reduction="none", ignore_index=self.ignore_index)
        return (weights * per_voxel).sum() / (target != self.ignore_index).sum().clamp_min(1)
