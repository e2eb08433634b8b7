"""PositionSelfAttention: every position of a 2D feature map attends to every other (non-local / SAGAN form)."""
from __future__ import annotations

import torch
from torch import nn


class PositionSelfAttention(nn.Module):
    """(N, C, H, W) -> (N, C, H, W):  y_i = x_i + gamma * sum_j softmax_j(q_i . k_j) v_j.

    q, k: 1x1 convolutions to ``channels // reduction`` (at least 1) channels; v: a 1x1 convolution to ``channels``;
    positions i, j run over all H x W pixels. ``gamma`` is learned and starts at ``initial_gamma`` (0: the block
    starts as the identity, as in SAGAN and DANet). Costs (H W)^2 memory: meant for a U-Net's bottleneck.
    """

    def __init__(self, channels: int, reduction: int = 8, initial_gamma: float = 0.0):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, hidden, 1)
        self.key = nn.Conv2d(channels, hidden, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.tensor(float(initial_gamma)))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(N, HW, HW): row i is the weights position i gives every position j."""
        query, key = self.query(x).flatten(2), self.key(x).flatten(2)
        return torch.softmax(query.transpose(1, 2) @ key, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended = self.value(x).flatten(2) @ self.attention(x).transpose(1, 2)
        return x + self.gamma * attended.reshape(x.shape)
