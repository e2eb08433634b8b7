"""StageUNet: nnU-Net's planned 2D U-Net topology, each stage built by a given function (UV-Net's multi-scale
blocks, RIU-Net's residual-inception blocks)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_25d.architectures.blocks.stage_decoder import StageDecoder

# (n_blocks, in_channels, out_channels, kernel_size, stride) -> the stage
EncoderStageBuilder = Callable[[int, int, int, Sequence[int], Sequence[int]], nn.Module]


def per_stage(value: int | Sequence, n: int) -> list:
    return [value] * n if isinstance(value, int) else list(value)


class StageUNet(nn.Module):
    """(N, input_channels, H, W) -> (N, num_classes, H, W) logits (deep supervision: a list, one per decoder stage,
    highest resolution first).

    The topology of nnU-Net's 2D plan (``PlainConvUNet``'s keyword arguments: stages, feature counts, kernel sizes,
    strides, convolutions per stage; transposed-convolution upsampling and skips, :class:`StageDecoder`), each
    stage ``build_stage(n_blocks, in_channels, out_channels, kernel_size, stride)``, ``n_blocks`` being the plan's
    convolutions per stage (stride 1 in the decoder).
    """

    def __init__(self, input_channels: int, num_classes: int, n_stages: int,
                 features_per_stage: int | Sequence[int], kernel_sizes: Sequence, strides: Sequence,
                 n_conv_per_stage: int | Sequence[int], n_conv_per_stage_decoder: int | Sequence[int],
                 build_stage: EncoderStageBuilder, conv_op: type[nn.Module] = nn.Conv2d, conv_bias: bool = True,
                 deep_supervision: bool = False):
        super().__init__()
        if conv_op is not nn.Conv2d:
            raise ValueError(f"{type(self).__name__} is a 2D network (conv_op torch.nn.Conv2d), the plans give "
                             f"{conv_op}: derive it from a 2d configuration")
        features = per_stage(features_per_stage, n_stages)
        kernels, strides = per_stage(kernel_sizes, n_stages), per_stage(strides, n_stages)
        blocks, channels = per_stage(n_conv_per_stage, n_stages), [input_channels, *features]
        self.encoder = nn.ModuleList(build_stage(blocks[s], channels[s], channels[s + 1], kernels[s], strides[s])
                                     for s in range(n_stages))
        self.decoder = StageDecoder(
            features, strides, kernels, per_stage(n_conv_per_stage_decoder, n_stages - 1), num_classes,
            deep_supervision, conv_bias=conv_bias,
            build_stage=lambda n, c_in, c_out, kernel: build_stage(n, c_in, c_out, kernel, 1))

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
