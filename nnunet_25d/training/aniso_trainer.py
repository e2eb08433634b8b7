"""nnUNetTrainer25DAniso: 2D stages first, 3D after (Wang et al., MICCAI 2019), with spatial attention."""
from __future__ import annotations

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.augmentation import configure_in_plane_augmentation
from nnunet_25d.configuration import SLAB_KEY, derive_aniso_plans
from nnunet_25d.losses import HardnessWeightedDiceLoss
from nnunet_25d.training.slab_trainer import require_preprocessed_data


class nnUNetTrainer25DAniso(nnUNetTrainer):
    """Anisotropy-aware U-Net: in-plane stages until the spacings match, 3D stages after, attention in the decoder.

    Trains on ``3d_fullres`` (nnU-Net's patch and data) or on ``2d`` (a thin slab of the 2d plan's data, in-plane
    augmentation as nnUNetTrainer25D).
    """

    attention: bool = True
    default_configuration: str = "3d_fullres"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        plans = derive_aniso_plans(plans, configuration, attention=self.attention)
        super().__init__(plans, configuration, fold, dataset_json, device)

    def initialize(self) -> None:
        require_preprocessed_data(self)
        super().initialize()

    @property
    def trains_on_thin_slabs(self) -> bool:
        return bool(self.configuration_manager.configuration[SLAB_KEY].get("thin_slab"))

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        if not self.trains_on_thin_slabs:
            return super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        return configure_in_plane_augmentation(self)


class nnUNetTrainer25DAniso_NoAttention(nnUNetTrainer25DAniso):
    attention = False


class nnUNetTrainer25DAniso_HardnessDice(nnUNetTrainer25DAniso):
    """Dice term replaced by :class:`HardnessWeightedDiceLoss` (CE and deep supervision as in nnU-Net)."""

    hardness: float = 0.6

    def _build_loss(self):
        loss = super()._build_loss()
        compound = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
        dice = getattr(compound.dc, "_orig_mod", compound.dc)
        compound.dc = HardnessWeightedDiceLoss(dice.apply_nonlin, dice.batch_dice, dice.do_bg, dice.smooth,
                                               dice.ddp, hardness=self.hardness)
        return loss
