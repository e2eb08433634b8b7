"""ASPPUNet: nnU-Net's planned PlainConvUNet with an ASPP module on its bottleneck."""
from __future__ import annotations

from typing import Sequence

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from nnunet_25d.architectures.blocks.aspp import ASPP


class ASPPUNet(PlainConvUNet):
    """PlainConvUNet (every keyword argument of nnU-Net's plans) whose bottleneck features pass through
    :class:`ASPP` (``aspp_rates``, the encoder's norm and non-linearity, as wide as the bottleneck) before the
    decoder. Decoder, skips and deep supervision outputs are PlainConvUNet's.
    """

    def __init__(self, input_channels: int, num_classes: int, aspp_rates: Sequence[int] = (6, 12, 18),
                 aspp_dropout: float = 0.0, **unet_kwargs):
        super().__init__(input_channels=input_channels, num_classes=num_classes, **unet_kwargs)
        encoder = self.encoder
        width = encoder.output_channels[-1]
        self.aspp = ASPP(width, width, aspp_rates, encoder.norm_op, encoder.norm_op_kwargs, encoder.nonlin,
                         encoder.nonlin_kwargs, dropout=aspp_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = self.encoder(x)
        return self.decoder([*skips[:-1], self.aspp(skips[-1])])
