"""RIU-Net's residual-inception block: InceptionV3-style factorised branches, concatenated, plus a shortcut."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnunet_25d.architectures.blocks.multi_scale_conv import as_pair, split_channels


class ConvNormAct(nn.Sequential):
    """Convolution -> [norm] -> [non-linearity], 'same' padding (nnU-Net's conv block order, no dropout)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Sequence[int], norm_op=None,
                 norm_op_kwargs: dict | None = None, nonlin=None, nonlin_kwargs: dict | None = None,
                 conv_bias: bool = True):
        kernel = tuple(kernel_size)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, padding=tuple(k // 2 for k in kernel),
                                             bias=conv_bias)]
        if norm_op is not None:
            layers.append(norm_op(out_channels, **(norm_op_kwargs or {})))
        if nonlin is not None:
            layers.append(nonlin(**(nonlin_kwargs or {})))
        super().__init__(*layers)


def factorised(kernel: tuple[int, int], repeats: int) -> list[tuple[int, int]]:
    """InceptionV3's factorisation of ``repeats`` stacked k_h x k_w convolutions into 1 x k_w then k_h x 1 pairs."""
    return [(1, kernel[1]), (kernel[0], 1)] * repeats


class ResidualInceptionBlock(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, H, W):  act( concat(b1, b2, b3, b4)(x) + shortcut(x) ).

    The output channels are split into four branches (:func:`split_channels`), each starting with a 1x1
    convolution (InceptionV3's bottleneck):

    - b1: 1x1;
    - b2: 1x1, then one k x k convolution factorised as 1 x k, k x 1 (receptive field k);
    - b3: 1x1, then two factorised k x k (receptive field 2k - 1, InceptionV3's 5x5 for k = 3);
    - b4: k x k average pooling (stride 1), then 1x1.

    Every convolution is followed by the plan's norm and non-linearity. The shortcut is the identity when
    C_in = C_out, else a 1x1 convolution with norm (the residual part of RIU-Net); the sum goes through the
    non-linearity. With C = C_out and k = 3 the block holds about 2 C_in C + 1.1 C^2 weights where a U-Net's
    3x3 convolution C_in -> C holds 9 C_in C.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3, norm_op=None,
                 norm_op_kwargs: dict | None = None, nonlin=None, nonlin_kwargs: dict | None = None,
                 conv_bias: bool = True):
        super().__init__()
        kernel = as_pair(kernel_size)
        layer = dict(norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin, nonlin_kwargs=nonlin_kwargs,
                     conv_bias=conv_bias)
        widths = split_channels(out_channels, 4)

        def branch(width: int, kernels: list[tuple[int, int]]) -> nn.Sequential:
            convs = [ConvNormAct(in_channels, width, (1, 1), **layer)]
            convs += [ConvNormAct(width, width, k, **layer) for k in kernels]
            return nn.Sequential(*convs)

        pooling = nn.AvgPool2d(kernel, stride=1, padding=tuple(k // 2 for k in kernel), count_include_pad=False)
        self.branches = nn.ModuleList([
            branch(widths[0], []),
            branch(widths[1], factorised(kernel, 1)),
            branch(widths[2], factorised(kernel, 2)),
            nn.Sequential(pooling, ConvNormAct(in_channels, widths[3], (1, 1), **layer)),
        ])
        self.shortcut = nn.Identity() if in_channels == out_channels else ConvNormAct(
            in_channels, out_channels, (1, 1), norm_op, norm_op_kwargs, None, None, conv_bias)
        self.activation = nonlin(**(nonlin_kwargs or {})) if nonlin is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(torch.cat([b(x) for b in self.branches], dim=1) + self.shortcut(x))
