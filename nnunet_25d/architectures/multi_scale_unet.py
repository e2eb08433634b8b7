"""MultiScaleUNet: nnU-Net's planned 2D U-Net topology built from UV-Net's multi-scale convolution blocks."""
from __future__ import annotations

from typing import Sequence

import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_25d.architectures.multi_scale_conv import MultiScaleConvBlock
from nnunet_25d.architectures.stage_decoder import StageDecoder


def per_stage(value: int | Sequence, n: int) -> list:
    return [value] * n if isinstance(value, int) else list(value)


class MultiScaleStage(nn.Sequential):
    """``n_blocks`` :class:`MultiScaleConvBlock` s, the first one mapping ``in_channels`` with ``stride``."""

    def __init__(self, n_blocks: int, in_channels: int, out_channels: int, kernel_size, stride, **block_kwargs):
        super().__init__(*(MultiScaleConvBlock(in_channels if i == 0 else out_channels, out_channels, kernel_size,
                                               stride if i == 0 else 1, **block_kwargs) for i in range(n_blocks)))


class MultiScaleUNet(nn.Module):
    """(N, input_channels, H, W) -> (N, num_classes, H, W) logits (deep supervision: a list, one per decoder stage,
    highest resolution first).

    Takes nnU-Net's 2D plan (``PlainConvUNet``'s keyword arguments) and builds the same topology — stages, feature
    counts, kernel sizes, strides, convolutions per stage, transposed-convolution upsampling, skips — with every
    convolution a :class:`MultiScaleConv2d` of ``branch_dilations``. Parameters and multiply-adds equal the
    planned PlainConvUNet's.
    """

    def __init__(self, input_channels: int, num_classes: int, n_stages: int,
                 features_per_stage: int | Sequence[int], kernel_sizes: Sequence, strides: Sequence,
                 n_conv_per_stage: int | Sequence[int], n_conv_per_stage_decoder: int | Sequence[int],
                 conv_op: type[nn.Module] = nn.Conv2d, conv_bias: bool = True,
                 norm_op: type[nn.Module] | None = nn.InstanceNorm2d, norm_op_kwargs: dict | None = None,
                 dropout_op: type[nn.Module] | None = None, dropout_op_kwargs: dict | None = None,
                 nonlin: type[nn.Module] | None = nn.LeakyReLU, nonlin_kwargs: dict | None = None,
                 deep_supervision: bool = False, branch_dilations: Sequence[int] = (1, 2, 3)):
        super().__init__()
        if conv_op is not nn.Conv2d:
            raise ValueError(f"MultiScaleUNet is a 2D network (conv_op torch.nn.Conv2d), the plans give {conv_op}: "
                             f"derive it from a 2d configuration")
        features = per_stage(features_per_stage, n_stages)
        kernels, strides = per_stage(kernel_sizes, n_stages), per_stage(strides, n_stages)
        block_kwargs = dict(dilations=list(branch_dilations), conv_bias=conv_bias, norm_op=norm_op,
                            norm_op_kwargs=norm_op_kwargs, dropout_op=dropout_op, dropout_op_kwargs=dropout_op_kwargs,
                            nonlin=nonlin, nonlin_kwargs=nonlin_kwargs)
        blocks = per_stage(n_conv_per_stage, n_stages)
        channels = [input_channels, *features]
        self.encoder = nn.ModuleList(MultiScaleStage(blocks[s], channels[s], channels[s + 1], kernels[s], strides[s],
                                                     **block_kwargs) for s in range(n_stages))
        self.decoder = StageDecoder(
            features, strides, kernels, per_stage(n_conv_per_stage_decoder, n_stages - 1), num_classes,
            deep_supervision, conv_bias=conv_bias,
            build_stage=lambda n, c_in, c_out, kernel: MultiScaleStage(n, c_in, c_out, kernel, 1, **block_kwargs))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        return self.decoder(skips)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """nnU-Net's initialisation of its U-Nets (He, negative slope 1e-2)."""
        InitWeights_He(1e-2)(module)
