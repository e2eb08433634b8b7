"""Project & Excite (Rickmann et al., MICCAI 2019): squeeze-and-excitation that keeps where along each axis."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd


def project(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) -> (N, C, *spatial): for every spatial axis, the mean over all *other* spatial axes
    (a profile along that axis), broadcast back and summed. For (N, C, D, H, W):
    ``Z[c, d, h, w] = mean_{h,w} x[c, d] + mean_{d,w} x[c, :, h] + mean_{d,h} x[c, :, :, w]``."""
    axes = range(2, x.ndim)
    return sum(x.mean(dim=[other for other in axes if other != axis], keepdim=True) for axis in axes)


class ProjectExcite(nn.Module):
    """x -> x * sigmoid(W2 * relu(W1 * project(x))), W1 (C -> C/reduction) and W2 (C/reduction -> C) 1x1 convs.

    Unlike squeeze-and-excitation (one global mean per channel) the gate varies along every axis, so a channel can be
    emphasised in some slices, rows and columns and not in others.
    """

    def __init__(self, conv_op: type[_ConvNd], channels: int, reduction: int = 2):
        super().__init__()
        if reduction < 1:
            raise ValueError(f"PE reduction ratio must be >= 1, got {reduction}")
        hidden = max(1, channels // reduction)
        self.reduce = conv_op(channels, hidden, 1)
        self.activation = nn.ReLU(inplace=True)
        self.expand = conv_op(hidden, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.expand(self.activation(self.reduce(project(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
