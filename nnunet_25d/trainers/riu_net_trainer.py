"""nnUNetTrainer25DRIUNet: RIU-Net (liver and tumour CT) — slab input into the authors' residual-inception U-Net;
nnUNetTrainer25DRIUNet_Factorised: the same slab input into nnU-Net's planned topology with factorised blocks."""
from __future__ import annotations

from nnunet_25d.trainers.checkpoints import RefusesOtherArchitectures
from nnunet_25d.architectures.riu_net import AUTHORS_LEVELS
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D

RIU_NET_REFERENCE = "nnunet_25d.architectures.riu_net.RIUNetReference"
RIU_NET = "nnunet_25d.architectures.riu_net.RIUNet"


class nnUNetTrainer25DRIUNet(RefusesOtherArchitectures, nnUNetTrainer25D):
    """nnUNetTrainer25D's slab input (slices as channels) into :class:`RIUNetReference`: the authors' network
    (``net/ince5.py``: a 3x3 stem, one residual-inception block per level, a double-convolution bottleneck,
    BatchNorm and ReLU) on the planned 2D U-Net's first five levels. Loss (nnU-Net's Dice + CE with deep
    supervision), augmentation, optimiser (nnU-Net's SGD + poly) and slab context are nnUNetTrainer25D's: the
    authors' repository holds the networks only."""

    slab_size = 3
    network_2d = RIU_NET_REFERENCE

    @classmethod
    def extra_arch_kwargs(cls) -> dict:
        return {**super().extra_arch_kwargs(), "network_2d": cls.network_2d}

    def _get_deep_supervision_scales(self):
        """nnU-Net's scales for the levels the network has (at most the authors' five: one output fewer)."""
        scales = super()._get_deep_supervision_scales()
        if scales is None or self.network_2d != RIU_NET_REFERENCE:
            return scales
        return scales[:min(len(self.configuration_manager.pool_op_kernel_sizes), AUTHORS_LEVELS) - 1]


class nnUNetTrainer25DRIUNet_Factorised(nnUNetTrainer25DRIUNet):
    """Ablation of nnUNetTrainer25DRIUNet: :class:`RIUNet`, nnU-Net's planned 2D topology with two InceptionV3-style
    blocks per stage (factorised 1x3/3x1 branches, a pooling branch, norm and activation after every convolution,
    identity shortcut where the channels match), about a third of the planned U-Net's parameters."""

    network_2d = RIU_NET
