"""Spatial attention: one learned weight per voxel, shared by all channels (Wang et al., MICCAI 2019)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd


class SpatialAttention(nn.Module):
    """x -> x * (1 + a(x)), with a(x) = sigmoid(conv1x1(relu(conv_k(x)))) in [0, 1] of shape (N, 1, *spatial).

    The residual form keeps the block an identity-plus-boost: features are never switched off entirely, which keeps
    early training stable.
    """

    def __init__(self, conv_op: type[_ConvNd], channels: int, kernel_size: list[int] | int = 3, reduction: int = 2):
        super().__init__()
        kernel = [kernel_size] * 3 if isinstance(kernel_size, int) else list(kernel_size)
        hidden = max(1, channels // reduction)
        self.squeeze = conv_op(channels, hidden, kernel, padding=[k // 2 for k in kernel])
        self.activation = nn.ReLU(inplace=True)
        self.score = conv_op(hidden, 1, 1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.score(self.activation(self.squeeze(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + self.attention_map(x))
