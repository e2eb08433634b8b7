"""``<trainer>_BorderLoss``: any trainer with nnU-Net's cross-entropy term replaced by the border-weighted one.

Made on demand from the name (:mod:`nnunet_25d.trainers.registry`), like the slab-size and schedule variants: ``nnUNetTrainer25D``
-> ``nnUNetTrainer25D_BorderLoss`` (and its ``_5slices``, ``_10epochs_50iters`` ... variants in the registry).
"""
from __future__ import annotations

from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.losses.border import BorderWeightedCrossEntropy

BORDER_LOSS_SUFFIX = "_BorderLoss"


class BorderLossMixin:
    """Put before a trainer class: its loss (Dice + CE, under deep supervision when on) keeps the Dice term and gets
    :class:`BorderWeightedCrossEntropy` as CE. Slab trainers' cropped targets and each deep-supervision scale get
    their borders from the target the loss is given."""

    border_width: int = 2  # voxels, in-plane
    border_weight: float = 4.0  # border voxels count 1 + 4 = 5 times

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise ValueError(f"{type(self).__name__}: the border-weighted loss needs label training (softmax "
                             f"cross-entropy); this dataset uses regions. Train the trainer without "
                             f"{BORDER_LOSS_SUFFIX} instead.")
        loss = super()._build_loss()
        compound = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
        if not isinstance(compound, DC_and_CE_loss):
            raise TypeError(f"{type(self).__name__}: expected nnU-Net's Dice + CE loss to re-weight, got "
                            f"{type(compound).__name__}")
        compound.ce = BorderWeightedCrossEntropy(self.border_width, self.border_weight,
                                                 ignore_index=self.label_manager.ignore_label)
        return loss


def with_border_loss(base: type[nnUNetTrainer], module: str) -> type[nnUNetTrainer]:
    """``<base>_BorderLoss``: ``base`` trained with the border-weighted cross-entropy."""
    name = base.__name__ + BORDER_LOSS_SUFFIX
    return type(name, (BorderLossMixin, base), {"__module__": module, "__qualname__": name})
