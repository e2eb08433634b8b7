"""nnUNetTrainer25DAniso: 2D stages first, 3D after (Wang et al., MICCAI 2019), with supervised spatial attention."""
from __future__ import annotations

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.trainers.augmentation import configure_in_plane_augmentation
from nnunet_25d.geometry.anisotropy import PAPER_SWITCH_RATIO, anisotropic_topology
from nnunet_25d.planning.configuration import (
    NNUNET_OPS_TO_IMPORT,
    SLAB_KEY,
    nnunet_3d_unet_ops,
    resolved_source,
    store_derived,
)
from nnunet_25d.losses.hardness_attention import AttentionDiceLoss, AttentionSupervisedLoss, HardnessWeightedDiceLoss
from nnunet_25d.geometry.slab import slab_batch
from nnunet_25d.trainers.slab_trainer import require_preprocessed_data
from nnunet_25d.trainers.checkpoints import SafeCheckpointLoading

ANISO_NETWORK = "nnunet_25d.architectures.aniso_unet.AnisoUNet"
THIN_SLAB_CONTEXT = 5  # the aniso network's thin patch is as deep as a 5-slice slab model's


def derive_aniso_plans(plans: dict, configuration: str, attention: bool = True, attention_supervision: bool = True,
                       switch_ratio: float = PAPER_SWITCH_RATIO, max_features: int = 320,
                       attention_placement: str = "stage_input") -> dict:
    """Plans whose ``configuration`` uses :class:`AnisoUNet` with stages computed from the spacing
    (``switch_ratio``: see :func:`anisotropic_topology`; the paper's rule by default).

    From ``3d_fullres`` (or any 3D configuration) the patch, batch and data stay nnU-Net's. From ``2d`` the patch
    becomes a thin 3D slab of the 2d plan's in-plane size on the 2d plan's data (slice spacing: the dataset's
    median), so the model costs about what nnU-Net's 2d costs per step. ``attention_supervision`` makes the network
    hand its attention maps to the training loss (nothing changes at inference); ``attention_placement``: see
    :class:`AnisoUNet` (VS_Seg's stage input by default).
    """
    supervised = attention and attention_supervision
    marker = {"network": ANISO_NETWORK, "attention": attention, "attention_supervision": supervised,
              "switch_ratio": switch_ratio, "attention_placement": attention_placement}
    derived, source = resolved_source(plans, configuration, marker)
    if source is None:
        return derived
    architecture = source["architecture"]
    kwargs_2d_or_3d = architecture["arch_kwargs"]
    if len(source["patch_size"]) == 2:
        median_depth = plans.get("original_median_shape_after_transp", [1])[0]
        batch = slab_batch(source["batch_size"], THIN_SLAB_CONTEXT, int(median_depth))
        source.update(patch_size=[batch.patch_depth, *source["patch_size"]], batch_size=batch.patches)
        spacing = [plans["original_median_spacing_after_transp"][0], *source["spacing"]]
        marker["thin_slab"] = True
    else:
        spacing = source["spacing"]
    topology = anisotropic_topology(spacing, source["patch_size"], max_stages=len(kwargs_2d_or_3d["strides"]),
                                    switch_ratio=switch_ratio)
    n = len(topology.kernel_sizes)
    base = kwargs_2d_or_3d["features_per_stage"][0]
    source["architecture"] = {
        "network_class_name": ANISO_NETWORK,
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": [min(base * 2 ** i, max_features) for i in range(n)],
            **nnunet_3d_unet_ops(),
            "kernel_sizes": topology.kernel_sizes,
            "strides": topology.strides,
            "n_conv_per_stage": [2] * n,
            "n_conv_per_stage_decoder": [2] * (n - 1),
            "attention": attention,
            "return_attention_maps": supervised,
            "attention_placement": attention_placement,
        },
        "_kw_requires_import": list(NNUNET_OPS_TO_IMPORT),
    }
    return store_derived(derived, configuration, source, marker)


class nnUNetTrainer25DAniso(SafeCheckpointLoading, nnUNetTrainer):
    """Anisotropy-aware U-Net: in-plane stages until the in-plane spacing reaches the slice spacing, 3D stages
    after, spatial attention at the bottleneck and on every decoder stage's input (as VS_Seg places it), each
    attention map supervised by a Dice loss against the downsampled foreground (added to nnU-Net's deep-supervised
    Dice + CE).

    Trains on ``3d_fullres`` (nnU-Net's patch and data) or on ``2d`` (a thin slab of the 2d plan's data, in-plane
    augmentation as nnUNetTrainer25D).
    """

    attention: bool = True
    attention_supervision: bool = True
    attention_loss_weight: float = 1.0  # VS_Seg adds the mean attention Dice loss to the segmentation loss as is
    attention_placement: str = "stage_input"  # VS_Seg's; "stage_output": nnUNetTrainer25DAniso_AttentionAfterStage
    switch_ratio: float = PAPER_SWITCH_RATIO
    default_configuration: str = "3d_fullres"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        plans = derive_aniso_plans(plans, configuration, attention=self.attention,
                                   attention_supervision=self.attention_supervision, switch_ratio=self.switch_ratio,
                                   attention_placement=self.attention_placement)
        super().__init__(plans, configuration, fold, dataset_json, device)

    @property
    def supervises_attention(self) -> bool:
        return self.attention and self.attention_supervision

    def _build_loss(self):
        loss = super()._build_loss()
        if not self.supervises_attention:
            return loss
        attention_loss = AttentionDiceLoss(batch_dice=self.configuration_manager.batch_dice, smooth=1e-5,
                                           ddp=self.is_ddp, ignore_label=self.label_manager.ignore_label,
                                           has_regions=self.label_manager.has_regions)
        if isinstance(loss, DeepSupervisionWrapper):
            return AttentionSupervisedLoss(loss.loss, loss.weight_factors, attention_loss, self.attention_loss_weight)
        return AttentionSupervisedLoss(loss, None, attention_loss, self.attention_loss_weight)

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
    """Ablation: no attention blocks (and so no attention loss)."""

    attention = False


class nnUNetTrainer25DAniso_NoAttentionLoss(nnUNetTrainer25DAniso):
    """Ablation: the attention blocks without their supervision (the attention maps learn from the segmentation
    loss alone)."""

    attention_supervision = False


class nnUNetTrainer25DAniso_AttentionAfterStage(nnUNetTrainer25DAniso):
    """Ablation: each attention block after its stage's convolutions instead of on the stage's input."""

    attention_placement = "stage_output"


class nnUNetTrainer25DAniso_HardnessDice(nnUNetTrainer25DAniso):
    """Dice term replaced by :class:`HardnessWeightedDiceLoss`, keeping nnU-Net's cross-entropy, deep supervision
    and Dice without background (attention supervision as in nnUNetTrainer25DAniso). The gradient flows through the
    hardness weights as in VS_Seg (``hardness_gradient``; nnUNetTrainer25DAniso_HardnessDiceDetached treats them as
    constants); nnUNetTrainer25DAniso_PaperLoss trains with the paper's loss alone."""

    hardness: float = 0.6
    hardness_gradient: bool = True

    def _build_loss(self):
        loss = super()._build_loss()
        compound = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
        dice = getattr(compound.dc, "_orig_mod", compound.dc)
        compound.dc = HardnessWeightedDiceLoss(dice.apply_nonlin, dice.batch_dice, dice.do_bg, dice.smooth,
                                               dice.ddp, hardness=self.hardness,
                                               weight_gradient=self.hardness_gradient)
        return loss


class nnUNetTrainer25DAniso_HardnessDiceDetached(nnUNetTrainer25DAniso_HardnessDice):
    """Ablation: the hardness weights as constants for the gradient (no gradient through |p - g|)."""

    hardness_gradient = False


class nnUNetTrainer25DAniso_PaperLoss(nnUNetTrainer25DAniso):
    """Wang et al.'s loss as VS_Seg trains it: hardness-weighted Dice over every class, background included (per
    sample, smooth 1e-5, weight 0.6 |p - g| + 0.4 with its gradient), plus the attention Dice; no cross-entropy, no
    deep supervision. Network, data, augmentation and optimiser (nnU-Net's SGD + poly) as nnUNetTrainer25DAniso."""

    hardness: float = 0.6
    smooth: float = 1e-5  # VS_Seg's (MONAI's Dice default); nnU-Net's soft Dice uses 1e-5 too

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False  # VS_Seg supervises the full-resolution output only

    def _build_loss(self):
        from nnunetv2.utilities.helpers import softmax_helper_dim1

        from nnunet_25d.errors import SetupError

        if self.label_manager.has_regions or self.label_manager.ignore_label is not None:
            raise SetupError(f"{type(self).__name__}: the paper's softmax Dice has no regions and no ignore label; "
                             f"train nnUNetTrainer25DAniso_HardnessDice on this dataset")
        dice = HardnessWeightedDiceLoss(softmax_helper_dim1, batch_dice=False, do_bg=True, smooth=self.smooth,
                                        ddp=self.is_ddp, hardness=self.hardness, weight_gradient=True)
        if not self.supervises_attention:
            return dice
        attention_loss = AttentionDiceLoss(batch_dice=False, smooth=self.smooth, ddp=self.is_ddp)
        return AttentionSupervisedLoss(dice, None, attention_loss, self.attention_loss_weight)
