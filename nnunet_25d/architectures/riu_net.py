"""RIUNet: nnU-Net's planned 2D U-Net topology with residual-inception blocks (Lv et al., BSPC 2022)."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from nnunet_25d.architectures.blocks.residual_inception import ResidualInceptionBlock
from nnunet_25d.architectures.blocks.stage_unet import StageUNet


class ResidualInceptionStage(nn.Sequential):
    """[max pooling by ``stride``] -> ``n_blocks`` :class:`ResidualInceptionBlock` s (the first maps
    ``in_channels`` to ``out_channels``)."""

    def __init__(self, n_blocks: int, in_channels: int, out_channels: int, kernel_size, stride=1, **block_kwargs):
        stride = tuple(stride) if not isinstance(stride, int) else (stride, stride)
        layers: list[nn.Module] = [nn.MaxPool2d(stride, stride)] if any(s > 1 for s in stride) else []
        layers += [ResidualInceptionBlock(in_channels if i == 0 else out_channels, out_channels, kernel_size,
                                          **block_kwargs) for i in range(n_blocks)]
        super().__init__(*layers)


class RIUNet(StageUNet):
    """(N, input_channels, H, W) -> (N, num_classes, H, W) logits (deep supervision: a list, one per decoder stage,
    highest resolution first).

    Takes nnU-Net's 2D plan (``PlainConvUNet``'s keyword arguments) and keeps its stages, feature counts, kernel
    sizes, strides and skips; each planned convolution becomes a :class:`ResidualInceptionBlock` (so a stage of two
    convolutions has two blocks), downsampling is max pooling before a stage (the U-Net of RIU-Net) and upsampling
    nnU-Net's transposed convolution. On nnU-Net's planned topologies this holds 33-37 % of the planned
    PlainConvUNet's parameters (the paper: about 70 % fewer than a U-Net). ``dropout_op`` is not used.
    """

    def __init__(self, input_channels: int, num_classes: int, n_stages: int,
                 features_per_stage: int | Sequence[int], kernel_sizes: Sequence, strides: Sequence,
                 n_conv_per_stage: int | Sequence[int], n_conv_per_stage_decoder: int | Sequence[int],
                 conv_op: type[nn.Module] = nn.Conv2d, conv_bias: bool = True,
                 norm_op: type[nn.Module] | None = nn.InstanceNorm2d, norm_op_kwargs: dict | None = None,
                 dropout_op: type[nn.Module] | None = None, dropout_op_kwargs: dict | None = None,
                 nonlin: type[nn.Module] | None = nn.LeakyReLU, nonlin_kwargs: dict | None = None,
                 deep_supervision: bool = False):
        block_kwargs = dict(norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin,
                            nonlin_kwargs=nonlin_kwargs, conv_bias=conv_bias)
        super().__init__(input_channels, num_classes, n_stages, features_per_stage, kernel_sizes, strides,
                         n_conv_per_stage, n_conv_per_stage_decoder, conv_op=conv_op, conv_bias=conv_bias,
                         deep_supervision=deep_supervision,
                         build_stage=lambda n, c_in, c_out, kernel, stride: ResidualInceptionStage(
                             n, c_in, c_out, kernel, stride, **block_kwargs))
