"""ContextualAttentionGate: a skip connection re-weighted by a map computed from it and the decoder's context."""
from __future__ import annotations

import torch
from torch import nn


class ContextualAttentionGate(nn.Module):
    """(skip, context) -> (skip * a, a),  a = sigmoid(psi(relu(theta(skip) + phi(context)))) of shape (N, 1, H, W).

    ``context``: the decoder's upsampled features at the skip's resolution (coarser, wider-context information);
    theta, phi: 1x1 convolutions to ``channels // reduction`` (at least 1); psi: a 1x1 convolution to one map
    (the additive attention gate of Attention U-Net). The map suppresses skip features where the context says
    they do not belong to the target.
    """

    def __init__(self, skip_channels: int, context_channels: int, reduction: int = 2):
        super().__init__()
        hidden = max(1, skip_channels // reduction)
        self.theta = nn.Conv2d(skip_channels, hidden, 1, bias=False)
        self.phi = nn.Conv2d(context_channels, hidden, 1)
        self.psi = nn.Conv2d(hidden, 1, 1)

    def attention_map(self, skip: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.psi(torch.relu(self.theta(skip) + self.phi(context))))

    def forward(self, skip: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attention = self.attention_map(skip, context)
        return skip * attention, attention
