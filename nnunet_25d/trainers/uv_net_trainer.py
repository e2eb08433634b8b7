"""nnUNetTrainer25DUVNet: UV-Net (liver tumour CT) — depth reduction of the slab, then a 2D U-Net of multi-scale
convolutions."""
from __future__ import annotations

from nnunet_25d.trainers.fusion_trainer import nnUNetTrainer25DFusion

MULTI_SCALE_UNET = "nnunet_25d.architectures.multi_scale_unet.MultiScaleUNet"


class nnUNetTrainer25DUVNet(nnUNetTrainer25DFusion):
    """nnUNetTrainer25DFusion's depth reduction ((S-1)/2 valid-in-z 3x3x3 blocks fuse the slab into one slice),
    then the planned 2D U-Net topology with every convolution a multi-scale one (:class:`MultiScaleUNet`: output
    channels split over dilations ``branch_dilations``, the same parameters as the planned U-Net).

    A reading of UV-Net's abstract (inter-slice information encoded "in the context of 3D convolution", the result
    reconstructed "with 2D deconvolution"): the depth-reduction layout, the multi-scale branches and nnU-Net's loss
    and optimiser are ours."""

    slab_size = 3
    branch_dilations = (1, 2, 3)

    @classmethod
    def extra_arch_kwargs(cls) -> dict:
        return {**super().extra_arch_kwargs(), "network_2d": MULTI_SCALE_UNET,
                "branch_dilations": list(cls.branch_dilations)}
