"""Spatial attention: one learned weight per voxel, shared by all channels (Wang et al., MICCAI 2019)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd


class SpatialAttention(nn.Module):
    """x -> (x * (1 + a), a) with a = sigmoid(conv_k(relu(conv_k(x)))) in [0, 1], shape (N, 1, *spatial).

    As in the paper and the group's VS_Seg code: the first convolution has ``channels // reduction`` outputs and
    ReLU, the second one output and sigmoid; both use the stage's kernel (1x3x3 in in-plane stages, 3x3x3 in 3D
    ones), no normalisation. The residual form ``x * (1 + a)`` never switches features off entirely. The map
    ``a`` is returned so that a loss can supervise it.
    """

    def __init__(self, conv_op: type[_ConvNd], channels: int, kernel_size: list[int] | int = 3, reduction: int = 2):
        super().__init__()
        kernel = [kernel_size] * 3 if isinstance(kernel_size, int) else list(kernel_size)
        padding = [k // 2 for k in kernel]
        hidden = max(1, channels // reduction)
        self.squeeze = conv_op(channels, hidden, kernel, padding=padding)
        self.activation = nn.ReLU(inplace=True)
        self.score = conv_op(hidden, 1, kernel, padding=padding)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.score(self.activation(self.squeeze(x))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attention = self.attention_map(x)
        return x * (1 + attention), attention
