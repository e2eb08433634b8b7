"""nnUNetTrainer25DPsiNet: Ψ-Net (intracerebral haemorrhage CT) — slab input into a U-Net with self-attention,
contextual-attention gates and a slice-level auxiliary task, trained with a class-balanced loss."""
from __future__ import annotations

from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

from nnunet_25d.losses.slice_supervision import ClassBalancedCrossEntropy, SlicePresenceLoss, SliceSupervisedLoss
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D

PSI_NET = "nnunet_25d.architectures.psi_net.PsiNet"


class nnUNetTrainer25DPsiNet(nnUNetTrainer25D):
    """nnUNetTrainer25D's slab input into :class:`PsiNet` (the planned 2D U-Net + self-attention at the bottleneck,
    a contextual-attention gate on every skip, a slice classifier), trained at two levels: nnU-Net's Dice with
    :class:`ClassBalancedCrossEntropy` for the pixels, plus ``slice_loss_weight`` x the binary cross-entropy of
    "slice contains label c" (:class:`SlicePresenceLoss`) for every supervised slice. Augmentation and slab
    context are nnUNetTrainer25D's, the optimiser nnU-Net's SGD + poly; label training only (no regions).

    Built from Ψ-Net's abstract: the 3-slice slab input, every block's layer design and the loss weights are ours."""

    slab_size = 3
    self_attention_reduction: int = 8
    gate_reduction: int = 2
    slice_loss_weight: float = 1.0

    @classmethod
    def extra_arch_kwargs(cls) -> dict:
        return {**super().extra_arch_kwargs(), "network_2d": PSI_NET,
                "self_attention_reduction": cls.self_attention_reduction, "gate_reduction": cls.gate_reduction,
                "return_slice_logits": True}

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise ValueError(f"{type(self).__name__}: Ψ-Net's class-balanced cross-entropy and slice task need label "
                             f"training; this dataset uses regions. Train nnUNetTrainer25D instead.")
        loss = super()._build_loss()
        deep = isinstance(loss, DeepSupervisionWrapper)
        compound = loss.loss if deep else loss
        if not isinstance(compound, DC_and_CE_loss):
            raise TypeError(f"{type(self).__name__}: expected nnU-Net's Dice + CE loss, got {type(compound).__name__}")
        compound.ce = ClassBalancedCrossEntropy(ignore_index=self.label_manager.ignore_label)
        return SliceSupervisedLoss(compound, loss.weight_factors if deep else None, SlicePresenceLoss(),
                                   self.slice_loss_weight)
