"""UV-Net's multi-scale convolution: one convolution's weights spread over branches of different dilation."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def split_channels(channels: int, parts: int) -> list[int]:
    """``channels`` in ``parts`` groups whose sizes differ by at most one, the larger ones first."""
    if parts < 1 or channels < parts:
        raise ValueError(f"cannot split {channels} channels into {parts} non-empty branches: use at most "
                         f"{channels} branch dilations")
    base, extra = divmod(channels, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def as_pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


class MultiScaleConv2d(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, H', W'):  y = concat_b [ W_b *_(d_b) x + bias_b ].

    The output channels are split into one group per dilation d_b in ``dilations`` (sizes from
    :func:`split_channels`); group b is a k x k convolution over all input channels at dilation d_b, padding
    d_b (k - 1) / 2 and ``stride``, so every branch keeps the same output size. Together the branches hold exactly
    the weights and multiply-adds of one k x k convolution C_in -> C_out ("multi-scale feature extraction with
    identical computing resources", UV-Net), while branch b sees offsets {-d_b, 0, d_b} (k = 3): receptive fields
    of 3, 5, 7 pixels for dilations 1, 2, 3. An axis of kernel size 1 is unaffected by the dilation.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3,
                 stride: int | Sequence[int] = 1, dilations: Sequence[int] = (1, 2, 3), bias: bool = True):
        super().__init__()
        kernel = as_pair(kernel_size)
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(f"multi-scale convolutions need odd kernel sizes (centred branches), got {kernel}")
        self.dilations = [int(d) for d in dilations]
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, width, kernel, stride, padding=tuple(d * (k - 1) // 2 for k in kernel),
                      dilation=d, bias=bias)
            for width, d in zip(split_channels(out_channels, len(self.dilations)), self.dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class MultiScaleConvBlock(nn.Sequential):
    """:class:`MultiScaleConv2d` -> [dropout] -> norm -> non-linearity (nnU-Net's conv block order)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int], dilations: Sequence[int], conv_bias: bool = True,
                 norm_op: type[nn.Module] | None = nn.InstanceNorm2d, norm_op_kwargs: dict | None = None,
                 dropout_op: type[nn.Module] | None = None, dropout_op_kwargs: dict | None = None,
                 nonlin: type[nn.Module] | None = nn.LeakyReLU, nonlin_kwargs: dict | None = None):
        layers: list[nn.Module] = [MultiScaleConv2d(in_channels, out_channels, kernel_size, stride, dilations,
                                                    conv_bias)]
        if dropout_op is not None:
            layers.append(dropout_op(**(dropout_op_kwargs or {})))
        if norm_op is not None:
            layers.append(norm_op(out_channels, **(norm_op_kwargs or {})))
        if nonlin is not None:
            layers.append(nonlin(**(nonlin_kwargs or {})))
        super().__init__(*layers)
