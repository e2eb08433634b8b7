"""AuxiliarySupervisedLoss: nnU-Net's (deep-supervised) segmentation loss plus a weighted loss on a second output
that a network returns in training mode beside its segmentation."""
from __future__ import annotations

from typing import Sequence

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from torch import nn


class AuxiliarySupervisedLoss(DeepSupervisionWrapper):
    """``loss`` over the segmentation outputs (with ``weight_factors`` as nnU-Net's deep supervision; None: one
    output, one target) + ``auxiliary_weight`` x ``auxiliary_loss(auxiliary, full-resolution target)``.

    The network's training output is an ``output_type`` pair (segmentation, auxiliary); any other output (eval
    mode: nnU-Net's validation loss) gets the segmentation loss only. A :class:`DeepSupervisionWrapper`, so code
    that reaches nnU-Net's compound loss through ``.loss`` keeps working.
    """

    output_type: type  # the network's NamedTuple (segmentation, auxiliary): set by each subclass

    def __init__(self, loss: nn.Module, weight_factors: Sequence[float] | None, auxiliary_loss: nn.Module,
                 auxiliary_weight: float = 1.0):
        super().__init__(loss, (1.0,) if weight_factors is None else weight_factors)
        self.deep_supervision = weight_factors is not None
        self.auxiliary_loss, self.auxiliary_weight = auxiliary_loss, auxiliary_weight

    def forward(self, output, target) -> torch.Tensor:
        segmentation, auxiliary = output if isinstance(output, self.output_type) else (output, None)
        if not self.deep_supervision:
            segmentation, target = [segmentation], [target]
        loss = super().forward(segmentation, target)
        if auxiliary is not None and self.auxiliary_weight != 0:
            loss = loss + self.auxiliary_weight * self.auxiliary_loss(auxiliary, target[0])
        return loss
