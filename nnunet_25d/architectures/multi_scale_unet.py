"""MultiScaleUNet: nnU-Net's planned 2D U-Net topology built from UV-Net's multi-scale convolution blocks."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from nnunet_25d.architectures.blocks.multi_scale_conv import MultiScaleConvBlock
from nnunet_25d.architectures.blocks.stage_unet import StageUNet


class MultiScaleStage(nn.Sequential):
    """``n_blocks`` :class:`MultiScaleConvBlock` s, the first one mapping ``in_channels`` with ``stride``."""

    def __init__(self, n_blocks: int, in_channels: int, out_channels: int, kernel_size, stride, **block_kwargs):
        super().__init__(*(MultiScaleConvBlock(in_channels if i == 0 else out_channels, out_channels, kernel_size,
                                               stride if i == 0 else 1, **block_kwargs) for i in range(n_blocks)))


class MultiScaleUNet(StageUNet):
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
        block_kwargs = dict(dilations=list(branch_dilations), conv_bias=conv_bias, norm_op=norm_op,
                            norm_op_kwargs=norm_op_kwargs, dropout_op=dropout_op, dropout_op_kwargs=dropout_op_kwargs,
                            nonlin=nonlin, nonlin_kwargs=nonlin_kwargs)
        super().__init__(input_channels, num_classes, n_stages, features_per_stage, kernel_sizes, strides,
                         n_conv_per_stage, n_conv_per_stage_decoder, conv_op=conv_op, conv_bias=conv_bias,
                         deep_supervision=deep_supervision,
                         build_stage=lambda n, c_in, c_out, kernel, stride: MultiScaleStage(n, c_in, c_out, kernel,
                                                                                            stride, **block_kwargs))
