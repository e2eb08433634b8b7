"""PEAttentionUNet: the nasopharynx-GTV network of Mei et al. (2021) — a U-Net of nine convolutional blocks with a
Project & Excite block before every block but the first and spatial attention before the PE blocks of the bottom
and of the decoder."""
from __future__ import annotations

from typing import Sequence

import torch
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_25d.architectures.blocks.pe_block import ProjectExcite
from nnunet_25d.architectures.blocks.spatial_attention import SpatialAttention


class AttentionGate(nn.Module):
    """:class:`SpatialAttention` for a sequential stage: only the re-weighted features go on (the module also
    returns its map, for losses that supervise it; this network does not)."""

    def __init__(self, conv_op: type[_ConvNd], channels: int, kernel_size: list[int], reduction: int):
        super().__init__()
        self.attention = SpatialAttention(conv_op, channels, kernel_size, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.attention(x)
        return output[0] if isinstance(output, tuple) else output


def in_plane_kernel(kernel: Sequence[int]) -> list[int]:
    """The attention convolutions stay in-plane (1 x k x k), as in the authors' network, even where the block is 3D."""
    kernel = list(kernel)
    return [1, *kernel[1:]] if len(kernel) == 3 else kernel


class PEAttentionUNet(nn.Module):
    """Input (B, C, D, H, W) -> logits (B, K, D, H, W); a list, highest resolution first, with deep supervision.

    Arguments as nnU-Net's PlainConvUNet (``n_stages`` = 5 gives the paper's nine blocks: four encoder blocks, the
    bottom, four decoder blocks), plus ``pe_reduction`` (channel reduction of the PE excitation) and
    ``attention_reduction`` (of the spatial attention's hidden layer). Downsampling is max pooling *before* a block,
    so each PE block recalibrates exactly the block's input:

    - encoder stage s > 0: pool -> [spatial attention, bottom only] -> PE -> two convolutions;
    - decoder stage: upsample, concatenate the skip -> spatial attention -> PE -> two convolutions.
    """

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: Sequence[int],
        conv_op: type[_ConvNd],
        kernel_sizes: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int]],
        n_conv_per_stage: Sequence[int] | int,
        num_classes: int,
        n_conv_per_stage_decoder: Sequence[int] | int,
        conv_bias: bool = True,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[nn.Module] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        deep_supervision: bool = False,
        pe_reduction: int = 2,
        attention_reduction: int = 2,
    ):
        super().__init__()
        self.encoder = PlainConvEncoder(input_channels, n_stages, list(features_per_stage), conv_op,
                                        [list(k) for k in kernel_sizes], [list(s) for s in strides], n_conv_per_stage,
                                        conv_bias, norm_op, norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin,
                                        nonlin_kwargs, return_skips=True, pool="max")
        self._recalibrate_encoder(pe_reduction, attention_reduction)
        self.decoder = UNetDecoder(self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision)
        self._recalibrate_decoder(pe_reduction, attention_reduction)

    def _recalibrate_encoder(self, pe_reduction: int, attention_reduction: int) -> None:
        encoder, bottom = self.encoder, len(self.encoder.stages) - 1
        for s in range(1, bottom + 1):
            *pool, convs = encoder.stages[s]
            channels = encoder.output_channels[s - 1]
            gates = [ProjectExcite(encoder.conv_op, channels, pe_reduction)]
            if s == bottom:
                gates.insert(0, AttentionGate(encoder.conv_op, channels, in_plane_kernel(encoder.kernel_sizes[s]),
                                              attention_reduction))
            encoder.stages[s] = nn.Sequential(*pool, *gates, convs)

    def _recalibrate_decoder(self, pe_reduction: int, attention_reduction: int) -> None:
        encoder = self.encoder
        for s, convs in enumerate(self.decoder.stages):
            level = -(s + 2)  # decoder stage s works at the resolution of encoder stage n-2-s
            channels = 2 * encoder.output_channels[level]  # upsampled features + skip
            self.decoder.stages[s] = nn.Sequential(
                AttentionGate(encoder.conv_op, channels, in_plane_kernel(encoder.kernel_sizes[level]),
                              attention_reduction),
                ProjectExcite(encoder.conv_op, channels, pe_reduction),
                convs,
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.decoder(self.encoder(x))

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)
