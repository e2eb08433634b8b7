"""Ablations of the conv slab model, each one idea: the earlier batch design, and nnU-Net's SGD instead of AdamW."""
from __future__ import annotations

from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D


class nnUNetTrainer25D_DeepPatches(nnUNetTrainer25D):
    """``nnUNetTrainer25D`` as it was before self-configuration, per-slice batches and AdamW: 3 slices on the 2d
    data, the 2d batch's slices as the fewest, deepest patches (e.g. 5 patches x 8 consecutive supervised slices
    for a 2d batch of 40), foreground forced per patch, nnU-Net's SGD + poly."""

    slab_size = 3
    supervised_per_patch = None
    optimiser = "sgd"


class nnUNetTrainer25D_SGD(nnUNetTrainer25D):
    """The self-configured slab model trained with nnU-Net's SGD (lr 1e-2, momentum 0.99, Nesterov) + poly schedule
    instead of AdamW + warm-up + cosine."""

    optimiser = "sgd"
