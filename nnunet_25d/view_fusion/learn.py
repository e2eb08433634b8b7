"""Learning per-model, per-class fusion weights from cross-validation probabilities.

The weights are ``softmax`` over models of free parameters (so they stay a weighted mean; all zeros is
averaging) and minimise nnU-Net's training objective on the fused probabilities: cross-entropy plus soft Dice
of the foreground classes, optimised with L-BFGS. The objective is the one over every voxel of the cases, estimated
from a voxel sample of each case: every foreground voxel up to a cap (so small classes are covered) and as many
background voxels, each sampled voxel weighted by the inverse of its stratum's sampling fraction, so that the
sample keeps the data's class balance (the weighted voxel count of each class is the case's).
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
    """One case's sampled voxels: ``probabilities`` (models, classes, voxels), ``labels`` (voxels) and ``weights``
    (voxels: how many of the case's voxels each sampled one stands for)."""

    probabilities: np.ndarray
    labels: np.ndarray
    weights: np.ndarray


def sample_voxels(case: str, probabilities: Sequence[np.ndarray], labels: np.ndarray,
                  max_voxels: int = MAX_VOXELS_PER_CASE) -> VoxelSample:
    """Every foreground voxel (at most half of ``max_voxels``) and as many background voxels, drawn with a seed
    from the case name (the same case gives the same sample in every fold); each weighted by its stratum's size
    over its sampled count."""
    flat_labels = labels.reshape(-1)
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    strata = (np.flatnonzero(flat_labels > 0), np.flatnonzero(flat_labels == 0))
    half = max_voxels // 2
    n_foreground = min(len(strata[0]), half)
    n_background = min(len(strata[1]), max(n_foreground, max_voxels - 2 * n_foreground, 1))
    chosen, weights = [], []
    for stratum, n in zip(strata, (n_foreground, n_background)):
        kept = rng.choice(stratum, n, replace=False) if n < len(stratum) else stratum
        chosen.append(kept)
        weights.append(np.full(len(kept), len(stratum) / max(len(kept), 1)))
    order = np.argsort(np.concatenate(chosen))
    chosen_voxels, voxel_weights = np.concatenate(chosen)[order], np.concatenate(weights)[order]
    stacked = np.stack([p.reshape(p.shape[0], -1)[:, chosen_voxels] for p in probabilities])
    return VoxelSample(stacked.astype(np.float32), flat_labels[chosen_voxels].astype(np.int64),
                       voxel_weights.astype(np.float32))


def fusion_loss(logits: torch.Tensor, samples: Sequence[VoxelSample], smooth: float = 1e-5) -> torch.Tensor:
    """Cross-entropy + (1 - mean soft Dice of the foreground classes) of the fused, renormalised probabilities,
    every voxel counted with its sample weight."""
    weights = torch.softmax(logits, dim=0)  # (models, classes)
    probabilities = torch.cat([torch.from_numpy(s.probabilities) for s in samples], dim=2)
    labels = torch.cat([torch.from_numpy(s.labels) for s in samples])
    voxel_weights = torch.cat([torch.from_numpy(s.weights) for s in samples])
    fused = (weights[:, :, None] * probabilities).sum(0)
    fused = fused / fused.sum(0, keepdim=True).clamp_min(1e-8)
    per_voxel = torch.nn.functional.nll_loss(fused.clamp_min(1e-8).log().T, labels, reduction="none")
    cross_entropy = (voxel_weights * per_voxel).sum() / voxel_weights.sum()
    one_hot = torch.nn.functional.one_hot(labels, fused.shape[0]).T.float()
    intersection = (voxel_weights * fused * one_hot).sum(1)
    total = (voxel_weights * fused).sum(1) + (voxel_weights * one_hot).sum(1)
    dice = (2 * intersection + smooth) / (total + smooth)
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
