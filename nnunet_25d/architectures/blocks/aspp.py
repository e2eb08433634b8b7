"""ASPP: atrous spatial pyramid pooling (DeepLabv3, Chen et al. 2017) with nnU-Net's norm and non-linearity."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _norm_nonlin(channels: int, norm_op: type[nn.Module] | None, norm_op_kwargs: dict | None,
                 nonlin: type[nn.Module] | None, nonlin_kwargs: dict | None) -> list[nn.Module]:
    layers = [norm_op(channels, **(norm_op_kwargs or {}))] if norm_op is not None else []
    return layers + ([nonlin(**(nonlin_kwargs or {}))] if nonlin is not None else [])


class ASPP(nn.Module):
    """(N, in_channels, H, W) -> (N, out_channels, H, W).

    Parallel branches on the same input, each ``out_channels`` wide: a 1x1 convolution; per rate r in ``rates`` a
    3x3 convolution of dilation r (padding r, so it sees the input at offsets {-r, 0, r} in each axis); and, with
    ``image_pooling``, the global average -> 1x1 convolution, broadcast back to H x W. Each branch is followed by
    norm and non-linearity, except the pooled one (instance norm of a 1x1 map is zero); the concatenation is
    projected by a 1x1 convolution + norm + non-linearity (+ dropout).
    """

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int] = (6, 12, 18),
                 norm_op: type[nn.Module] | None = nn.InstanceNorm2d, norm_op_kwargs: dict | None = None,
                 nonlin: type[nn.Module] | None = nn.LeakyReLU, nonlin_kwargs: dict | None = None,
                 image_pooling: bool = True, dropout: float = 0.0):
        super().__init__()
        if not rates or any(int(r) < 1 for r in rates):
            raise ValueError(f"ASPP rates must be positive integers, got {list(rates)}")
        self.rates = [int(r) for r in rates]
        post = (out_channels, norm_op, norm_op_kwargs, nonlin, nonlin_kwargs)
        self.branches = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), *_norm_nonlin(*post))] +
            [nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=r, dilation=r), *_norm_nonlin(*post))
             for r in self.rates])
        self.pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1),
            *([nonlin(**(nonlin_kwargs or {}))] if nonlin is not None else [])) if image_pooling else None
        n_branches = len(self.branches) + (1 if image_pooling else 0)
        self.project = nn.Sequential(nn.Conv2d(n_branches * out_channels, out_channels, 1), *_norm_nonlin(*post),
                                     *([nn.Dropout(dropout)] if dropout else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches]
        if self.pooling is not None:
            outputs.append(self.pooling(x).expand(-1, -1, *x.shape[2:]))
        return self.project(torch.cat(outputs, dim=1))
