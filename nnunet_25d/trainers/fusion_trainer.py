"""nnUNetTrainer25DFusion: a learned depth reduction (UV-Net's DR module) in front of the planned 2D network."""
from __future__ import annotations

from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D

DEPTH_REDUCTION_NETWORK = "nnunet_25d.architectures.depth_reduction.DepthReductionNetwork"


class nnUNetTrainer25DFusion(nnUNetTrainer25D):
    """Slab of ``slab_size`` slices -> (slab_size-1)/2 valid-in-z 3x3x3 blocks -> one slice -> 2D U-Net."""

    slab_size = 3
    network_class = DEPTH_REDUCTION_NETWORK
    reduction_features = 32

    @classmethod
    def extra_arch_kwargs(cls) -> dict:
        return {"reduction_features": cls.reduction_features}
