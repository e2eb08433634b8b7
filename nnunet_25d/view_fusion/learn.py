"""Learning per-model, per-class fusion weights from cross-validation probabilities.

The weights are ``softmax`` over models of free parameters (so they stay a weighted mean; all zeros is
averaging) and minimise nnU-Net's training objective on the fused probabilities: cross-entropy plus soft Dice
of the foreground classes, over a voxel sample of each case (every foreground voxel up to a cap, as many
background voxels), optimised with L-BFGS.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

MAX_VOXELS_PER_CASE = 200_000
LBFGS_STEPS = 50


@dataclass(frozen=True)
class VoxelSample:
    """One case's sampled voxels: ``probabilities`` (models, classes, voxels) and ``labels`` (voxels)."""

    probabilities: np.ndarray
    labels: np.ndarray


def sample_voxels(case: str, probabilities: Sequence[np.ndarray], labels: np.ndarray,
                  max_voxels: int = MAX_VOXELS_PER_CASE) -> VoxelSample:
    """Every foreground voxel (at most half of ``max_voxels``) and as many background voxels, drawn with a seed
    from the case name (the same case gives the same sample in every fold)."""
    flat_labels = labels.reshape(-1)
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    foreground = np.flatnonzero(flat_labels > 0)
    background = np.flatnonzero(flat_labels == 0)
    half = max_voxels // 2
    if len(foreground) > half:
        foreground = rng.choice(foreground, half, replace=False)
    n_background = min(len(background), max(len(foreground), max_voxels - 2 * len(foreground), 1))
    background = rng.choice(background, n_background, replace=False) if n_background < len(background) else background
    chosen = np.sort(np.concatenate([foreground, background]))
    stacked = np.stack([p.reshape(p.shape[0], -1)[:, chosen] for p in probabilities])
    return VoxelSample(stacked.astype(np.float32), flat_labels[chosen].astype(np.int64))


def fusion_loss(logits: torch.Tensor, samples: Sequence[VoxelSample], smooth: float = 1e-5) -> torch.Tensor:
    """Cross-entropy + (1 - mean soft Dice of the foreground classes) of the fused, renormalised probabilities."""
    weights = torch.softmax(logits, dim=0)  # (models, classes)
    probabilities = torch.cat([torch.from_numpy(s.probabilities) for s in samples], dim=2)
    labels = torch.cat([torch.from_numpy(s.labels) for s in samples])
    fused = (weights[:, :, None] * probabilities).sum(0)
    fused = fused / fused.sum(0, keepdim=True).clamp_min(1e-8)
    cross_entropy = torch.nn.functional.nll_loss(fused.clamp_min(1e-8).log().T, labels)
    one_hot = torch.nn.functional.one_hot(labels, fused.shape[0]).T.float()
    intersection = (fused * one_hot).sum(1)
    dice = (2 * intersection + smooth) / (fused.sum(1) + one_hot.sum(1) + smooth)
    return cross_entropy + 1 - dice[1:].mean()


def learn_weights(samples: Sequence[VoxelSample], steps: int = LBFGS_STEPS) -> np.ndarray:
    """(models, classes) weights minimising :func:`fusion_loss` on ``samples``, starting from averaging."""
    if not samples:
        raise ValueError("no cases to learn fusion weights from")
    n_models, n_classes = samples[0].probabilities.shape[:2]
    logits = torch.zeros(n_models, n_classes, dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.LBFGS([logits], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = fusion_loss(logits, samples)
        loss.backward()
        return loss

    optimiser.step(closure)
    return torch.softmax(logits.detach(), dim=0).double().numpy()
