"""AnisoUNet: a plain nnU-Net U-Net with spatial attention at the bottleneck and after every decoder stage."""
from __future__ import annotations

from typing import NamedTuple

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_25d.architectures.blocks.spatial_attention import SpatialAttention


class AttentionOutput(NamedTuple):
    """What AnisoUNet returns in training mode when ``return_attention_maps`` is set: nnU-Net's usual output (a
    list, highest resolution first, with deep supervision; else one tensor) and the attention maps, highest
    resolution first (the last one is the bottleneck's), each (N, 1, *that stage's spatial shape)."""

    segmentation: list[torch.Tensor] | torch.Tensor
    attention_maps: list[torch.Tensor]


ATTENTION_PLACEMENTS = ("stage_input", "stage_output")


class AnisoUNet(PlainConvUNet):
    """PlainConvUNet (every argument as in dynamic-network-architectures, by keyword as nnU-Net passes them) plus, with
    ``attention``, one :class:`SpatialAttention` at the bottleneck and one in every decoder stage (Wang et al.,
    Fig. 2), each with its stage's kernel size.

    ``attention_placement``: ``"stage_input"`` (default) as the group's VS_Seg code places the blocks: at the
    bottleneck after its strided (downsampling) convolution, before the remaining ones; in a decoder stage on the
    concatenation of the upsampled features and the skip, before the stage's convolutions. ``"stage_output"``
    (an ablation) after each stage's convolutions. Either way every map lies on its stage's grid.

    ``return_attention_maps``: in training mode return :class:`AttentionOutput` so that a loss can supervise the
    maps (:class:`nnunet_25d.losses.hardness_attention.AttentionSupervisedLoss`); in eval mode (validation, nnU-Net's predictor) the
    output is always nnU-Net's. The 2D-then-3D layout comes from the ``kernel_sizes``/``strides`` that the plans
    store (see :func:`nnunet_25d.geometry.anisotropy.anisotropic_topology`).
    """

    def __init__(self, *, attention: bool = True, attention_reduction: int = 2, return_attention_maps: bool = False,
                 attention_placement: str = "stage_input", **kwargs):
        super().__init__(**kwargs)
        if return_attention_maps and not attention:
            raise ValueError("return_attention_maps=True needs attention=True (a network without attention has no "
                             "attention maps)")
        if attention_placement not in ATTENTION_PLACEMENTS:
            raise ValueError(f"attention_placement must be one of {', '.join(ATTENTION_PLACEMENTS)}, got "
                             f"{attention_placement!r}")
        self.return_attention_maps = return_attention_maps
        self.attention_placement = attention_placement
        encoder = self.encoder
        # coarsest first: [bottleneck, decoder stage 0, ...]; decoder stage s works at encoder stage n-2-s's grid
        levels = range(len(encoder.output_channels) - 1, -1, -1)
        self.attention_blocks = nn.ModuleList(
            SpatialAttention(encoder.conv_op, self._attended_channels(level), encoder.kernel_sizes[level],
                             attention_reduction)
            for level in levels) if attention else nn.ModuleList()

    def _attended_channels(self, level: int) -> int:
        """A decoder stage's input is the concatenation of its upsampled features and the skip: twice the skip's."""
        bottleneck = level == len(self.encoder.output_channels) - 1
        on_concatenation = self.attention_placement == "stage_input" and not bottleneck
        return self.encoder.output_channels[level] * (2 if on_concatenation else 1)

    def forward(self, x: torch.Tensor):
        if not len(self.attention_blocks):
            return super().forward(x)
        skips, attention = self._encode(x)
        features, maps, outputs = skips[-1], [attention], []
        decoder, last = self.decoder, len(self.decoder.stages) - 1
        for s, stage in enumerate(decoder.stages):
            joined = torch.cat((decoder.transpconvs[s](features), skips[-(s + 2)]), 1)
            features, attention = self._attended_stage(stage, self.attention_blocks[s + 1], joined)
            maps.append(attention)
            if decoder.deep_supervision or s == last:
                outputs.append(decoder.seg_layers[s](features))
        outputs.reverse()
        segmentation = outputs if decoder.deep_supervision else outputs[0]
        if self.training and self.return_attention_maps:
            return AttentionOutput(segmentation, maps[::-1])
        return segmentation

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The encoder's skips, the last one the bottleneck's attended features, and the bottleneck's attention map."""
        stages = self.encoder.stages
        skips = []
        for stage in stages[:-1]:
            x = stage(x)
            skips.append(x)
        if self.attention_placement == "stage_output":
            features, attention = self.attention_blocks[0](stages[-1](x))
        else:
            *pooling, convolutions = stages[-1]  # dynamic-network-architectures: [pooling op,] StackedConvBlocks
            downsampling, *rest = convolutions.convs
            features, attention = self.attention_blocks[0](downsampling(nn.Sequential(*pooling)(x)))
            features = nn.Sequential(*rest)(features)
        return skips + [features], attention

    def _attended_stage(self, stage: nn.Module, block: SpatialAttention,
                        joined: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.attention_placement == "stage_output":
            return block(stage(joined))
        attended, attention = block(joined)
        return stage(attended), attention
