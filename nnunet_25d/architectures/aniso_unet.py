"""AnisoUNet: a plain nnU-Net U-Net with spatial attention at the bottleneck and after every decoder stage."""
from __future__ import annotations

from typing import NamedTuple

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_25d.architectures.spatial_attention import SpatialAttention


class AttentionOutput(NamedTuple):
    """What AnisoUNet returns in training mode when ``return_attention_maps`` is set: nnU-Net's usual output (a
    list, highest resolution first, with deep supervision; else one tensor) and the attention maps, highest
    resolution first (the last one is the bottleneck's), each (N, 1, *that stage's spatial shape)."""

    segmentation: list[torch.Tensor] | torch.Tensor
    attention_maps: list[torch.Tensor]


class AnisoUNet(PlainConvUNet):
    """PlainConvUNet (every argument as in dynamic-network-architectures, by keyword as nnU-Net passes them) plus, with ``attention``, one
    :class:`SpatialAttention` at the bottleneck and one after every decoder stage (Wang et al., Fig. 2), each with
    its stage's kernel size.

    ``return_attention_maps``: in training mode return :class:`AttentionOutput` so that a loss can supervise the
    maps (:class:`nnunet_25d.losses.AttentionSupervisedLoss`); in eval mode (validation, nnU-Net's predictor) the
    output is always nnU-Net's. The 2D-then-3D layout comes from the ``kernel_sizes``/``strides`` that the plans
    store (see :func:`nnunet_25d.anisotropy.anisotropic_topology`).
    """

    def __init__(self, *, attention: bool = True, attention_reduction: int = 2, return_attention_maps: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if return_attention_maps and not attention:
            raise ValueError("return_attention_maps=True needs attention=True (a network without attention has no "
                             "attention maps)")
        self.return_attention_maps = return_attention_maps
        encoder = self.encoder
        # coarsest first: [bottleneck, decoder stage 0, ...]; decoder stage s works at encoder stage n-2-s's grid
        levels = range(len(encoder.output_channels) - 1, -1, -1)
        self.attention_blocks = nn.ModuleList(
            SpatialAttention(encoder.conv_op, encoder.output_channels[level], encoder.kernel_sizes[level],
                             attention_reduction)
            for level in levels) if attention else nn.ModuleList()

    def forward(self, x: torch.Tensor):
        if not len(self.attention_blocks):
            return super().forward(x)
        skips = self.encoder(x)
        features, attention = self.attention_blocks[0](skips[-1])
        maps, outputs = [attention], []
        decoder, last = self.decoder, len(self.decoder.stages) - 1
        for s, stage in enumerate(decoder.stages):
            upsampled = decoder.transpconvs[s](features)
            features, attention = self.attention_blocks[s + 1](stage(torch.cat((upsampled, skips[-(s + 2)]), 1)))
            maps.append(attention)
            if decoder.deep_supervision or s == last:
                outputs.append(decoder.seg_layers[s](features))
        outputs.reverse()
        segmentation = outputs if decoder.deep_supervision else outputs[0]
        if self.training and self.return_attention_maps:
            return AttentionOutput(segmentation, maps[::-1])
        return segmentation
