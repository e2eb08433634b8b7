"""AnisoUNet: a plain nnU-Net U-Net whose decoder stages end in spatial attention."""
from __future__ import annotations

from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_25d.architectures.spatial_attention import SpatialAttention


class AnisoUNet(PlainConvUNet):
    """PlainConvUNet (every argument as in dynamic-network-architectures) plus ``attention``: when True, each
    decoder stage is followed by :class:`SpatialAttention` with that stage's kernel size.

    The 2D-then-3D layout comes from the ``kernel_sizes``/``strides`` that the plans store (see
    :func:`nnunet_25d.anisotropy.anisotropic_topology`).
    """

    def __init__(self, *args, attention: bool = True, attention_reduction: int = 2, **kwargs):
        super().__init__(*args, **kwargs)
        if attention:
            encoder = self.encoder
            for s, stage in enumerate(self.decoder.stages):
                level = -(s + 2)  # decoder stage s works at the resolution of encoder stage n-2-s
                self.decoder.stages[s] = nn.Sequential(
                    stage,
                    SpatialAttention(encoder.conv_op, encoder.output_channels[level], encoder.kernel_sizes[level],
                                     attention_reduction),
                )
