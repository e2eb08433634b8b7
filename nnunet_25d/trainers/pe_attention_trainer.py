"""nnUNetTrainer25DPEAttention: Mei et al.'s 2.5D GTV network (PE blocks + spatial attention) on thin 3D patches."""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.trainers.augmentation import blur_in_plane_only, configure_in_plane_augmentation
from nnunet_25d.planning.configuration import NNUNET_OPS_TO_IMPORT, nnunet_3d_unet_ops, resolved_source, store_derived
from nnunet_25d.trainers.slab_trainer import require_preprocessed_data
from nnunet_25d.trainers.checkpoints import SafeCheckpointLoading

PE_ATTENTION_NETWORK = "nnunet_25d.architectures.pe_attention_unet.PEAttentionUNet"
PAPER_DEPTH = 16  # the paper's patches are 16 x 64 x 64
N_STAGES = 5  # nine blocks: four encoder blocks, the bottom, four decoder blocks
IN_PLANE_KERNEL, BOTTOM_KERNEL = [1, 3, 3], [3, 3, 3]
IN_PLANE_POOL, BOTTOM_POOL = [1, 2, 2], [2, 2, 2]
IN_PLANE_DIVISOR = 2 ** (N_STAGES - 1)
MIN_PATCHES = 2  # nnU-Net's 3D batch


def thin_depth(depth: int, available: float) -> int:
    """``depth`` slices, at most the ``available`` (median) depth, even (the bottom pools the slice axis by 2)."""
    return max(2, 2 * (min(depth, int(available)) // 2))


def round_up(size: int, divisor: int) -> int:
    return divisor * math.ceil(size / divisor)


def thin_patch(plans: dict, source: dict, depth: int) -> list[int]:
    """The thin patch: ``depth`` slices (capped by the median depth) of the configuration's in-plane patch, the
    in-plane sizes rounded up to a multiple of 16 (four in-plane poolings)."""
    patch = list(source["patch_size"])
    if len(patch) == 2:
        available = plans.get("original_median_shape_after_transp", [depth])[0]
    else:
        available = source.get("median_image_size_in_voxels", patch)[0]
    return [thin_depth(depth, available), *(round_up(s, IN_PLANE_DIVISOR) for s in patch[-2:])]


def batch_for(source: dict, patch: list[int], gpus: int = 1) -> int:
    """Patches per step holding about the voxels of one step of the source configuration (2d: its batch of slices),
    at least 2 and at least one per GPU."""
    voxels = source["batch_size"] * math.prod(source["patch_size"])
    return max(MIN_PATCHES, gpus, voxels // math.prod(patch))


def pe_attention_architecture(source: dict, max_features: int, pe_reduction: int, attention_reduction: int) -> dict:
    """Plans entry of :class:`PEAttentionUNet`: four in-plane levels (1x3x3 convolutions, 1x2x2 pooling) and a 3D
    bottom (3x3x3, reached by 2x2x2 pooling), features doubling from the planned network's first stage."""
    base = source["architecture"]["arch_kwargs"]["features_per_stage"][0]
    return {
        "network_class_name": PE_ATTENTION_NETWORK,
        "arch_kwargs": {
            "n_stages": N_STAGES,
            "features_per_stage": [min(base * 2 ** i, max_features) for i in range(N_STAGES)],
            **nnunet_3d_unet_ops(),
            "kernel_sizes": [IN_PLANE_KERNEL] * (N_STAGES - 1) + [BOTTOM_KERNEL],
            "strides": [[1, 1, 1]] + [IN_PLANE_POOL] * (N_STAGES - 2) + [BOTTOM_POOL],
            "n_conv_per_stage": [2] * N_STAGES,
            "n_conv_per_stage_decoder": [2] * (N_STAGES - 1),
            "pe_reduction": pe_reduction,
            "attention_reduction": attention_reduction,
        },
        "_kw_requires_import": list(NNUNET_OPS_TO_IMPORT),
    }


def derive_pe_attention_plans(plans: dict, configuration: str, depth: int = PAPER_DEPTH, max_features: int = 320,
                              pe_reduction: int = 2, attention_reduction: int = 2, gpus: int = 1) -> dict:
    """Plans whose ``configuration`` trains :class:`PEAttentionUNet` on thin patches of that configuration's data.

    ``2d``: the 2d plan's data (each case keeps its own slice spacing, in-plane resampling only; the paper resamples
    its ROI crops to 3 mm slices, which ``nnunet25d make-roi-dataset`` does) in ``depth``-slice patches of the 2d in-plane patch. A 3D configuration (``3d_fullres``,
    ``3d_lowres``, or one of other plans): its own data and spacing, thin patches of its in-plane patch. Training
    and inference use the same patch (nnU-Net's sliding window tiles the slice axis). Idempotent.
    """
    marker = {"network": PE_ATTENTION_NETWORK, "depth": depth}
    derived, source = resolved_source(plans, configuration, marker)
    if source is None:
        return derived
    patch = thin_patch(plans, source, depth)
    batch = batch_for(source, patch, gpus)
    source.update(patch_size=patch, batch_size=batch,
                  architecture=pe_attention_architecture(source, max_features, pe_reduction, attention_reduction))
    return store_derived(derived, configuration, source, marker)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class nnUNetTrainer25DPEAttention(SafeCheckpointLoading, nnUNetTrainer):
    """PE blocks + spatial attention U-Net on thin (16-slice) patches; ``2d`` (default) or a 3D configuration.

    Augmentation as the slab trainers (rotation, scaling, mirroring and blur in-plane only), so the anisotropic slice
    axis is never rotated into the plane. Trained as nnU-Net trains (Dice + CE with deep supervision, SGD + poly, the
    plan's InstanceNorm); the authors' configuration (HiLab-git/Head-Neck-GTV, ``config/unet2d5_pe_att.cfg``) trains
    with a Dice loss alone, Adam at 1e-4 with step decay, PyMIC's convolution layers and 16 x 64 x 64 patches.
    """

    depth: int = PAPER_DEPTH
    pe_reduction: int = 2
    attention_reduction: int = 2
    default_configuration: str = "2d"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        plans = derive_pe_attention_plans(plans, configuration, self.depth, pe_reduction=self.pe_reduction,
                                          attention_reduction=self.attention_reduction, gpus=world_size())
        super().__init__(plans, configuration, fold, dataset_json, device)

    def initialize(self) -> None:
        require_preprocessed_data(self)
        super().initialize()

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        return configure_in_plane_augmentation(self)

    def get_training_transforms(self, *args, **kwargs):
        return blur_in_plane_only(nnUNetTrainer.get_training_transforms(*args, **kwargs))
