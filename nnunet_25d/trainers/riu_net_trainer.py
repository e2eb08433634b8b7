"""nnUNetTrainer25DRIUNet: RIU-Net (liver and tumour CT) — slab input into a U-Net of residual-inception blocks."""
from __future__ import annotations

from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D

RIU_NET = "nnunet_25d.architectures.riu_net.RIUNet"


class nnUNetTrainer25DRIUNet(nnUNetTrainer25D):
    """nnUNetTrainer25D's slab input (slices as channels) into :class:`RIUNet`: the planned 2D topology with every
    convolution a residual-inception block, about a third of the planned U-Net's parameters. Loss (nnU-Net's Dice + CE,
    the paper's Dice + BCE for one class), augmentation and slab context are nnUNetTrainer25D's; the optimiser is
    nnU-Net's SGD + poly."""

    slab_size = 3

    @classmethod
    def extra_arch_kwargs(cls) -> dict:
        return {**super().extra_arch_kwargs(), "network_2d": RIU_NET}
