"""RIUNet: nnU-Net's planned 2D U-Net topology with residual-inception blocks (Lv et al., BSPC 2022)."""
from __future__ import annotations

from typing import Sequence

import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_25d.architectures.multi_scale_unet import per_stage
from nnunet_25d.architectures.residual_inception import ResidualInceptionBlock
from nnunet_25d.architectures.stage_decoder import StageDecoder


class ResidualInceptionStage(nn.Sequential):
    """[max pooling by ``stride``] -> ``n_blocks`` :class:`ResidualInceptionBlock` s (the first maps
    ``in_channels`` to ``out_channels``)."""

    def __init__(self, n_blocks: int, in_channels: int, out_channels: int, kernel_size, stride=1, **block_kwargs):
        stride = tuple(stride) if not isinstance(stride, int) else (stride, stride)
        layers: list[nn.Module] = [nn.MaxPool2d(stride, stride)] if any(s > 1 for s in stride) else []
        layers += [ResidualInceptionBlock(in_channels if i == 0 else out_channels, out_channels, kernel_size,
                                          **block_kwargs) for i in range(n_blocks)]
        super().__init__(*layers)


class RIUNet(nn.Module):
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
        super().__init__()
        if conv_op is not nn.Conv2d:
            raise ValueError(f"RIUNet is a 2D network (conv_op torch.nn.Conv2d), the plans give {conv_op}: derive it "
                             f"from a 2d configuration")
        features = per_stage(features_per_stage, n_stages)
        kernels, strides = per_stage(kernel_sizes, n_stages), per_stage(strides, n_stages)
        block_kwargs = dict(norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin,
                            nonlin_kwargs=nonlin_kwargs, conv_bias=conv_bias)
        blocks = per_stage(n_conv_per_stage, n_stages)
        channels = [input_channels, *features]
        self.encoder = nn.ModuleList(ResidualInceptionStage(blocks[s], channels[s], channels[s + 1], kernels[s],
                                                            strides[s], **block_kwargs) for s in range(n_stages))
        self.decoder = StageDecoder(
            features, strides, kernels, per_stage(n_conv_per_stage_decoder, n_stages - 1), num_classes,
            deep_supervision, conv_bias=conv_bias,
            build_stage=lambda n, c_in, c_out, kernel: ResidualInceptionStage(n, c_in, c_out, kernel,
                                                                              **block_kwargs))

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
