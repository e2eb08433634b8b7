"""MorphMLP block on slab tokens (N, S, H, W, C): slice mixing, chunked spatial mixing per slice, channel MLP."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnunet_25d.architectures.blocks.morph_mlp_layers import MorphFCs, MorphFCt, default_temporal_group_size


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole residual branch for a random fraction ``p`` of the samples
    (first axis) and scale the kept ones by 1/(1-p); identity in eval mode or for p = 0."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MorphBlock(nn.Module):
    """(N, S, H, W, C) -> (N, S, H, W, C), LayerNorms over channels, as in the paper and the reference:

    ``x = x_in + FCt(LN(x_in))`` (slices mix at each pixel; no drop path, as in the reference),
    ``y = x_in + dp(FCs(LN(x)))`` (each slice on its own; the residual skips back to the block input),
    ``y = y + dp(MLP(LN(y)))`` with MLP = Linear(C, ratio*C), GELU, Linear(ratio*C, C).

    ``chunk_lengths``: the spatial layer's (L_H, L_W), or one length for both. ``temporal_group_size`` defaults to
    :func:`default_temporal_group_size` of ``dim``. ``global_only``: the reference's last-stage spatial layer (one
    global branch and the channel branch, see :class:`MorphFCs`).
    """

    def __init__(self, dim: int, slab_size: int, chunk_lengths: int | Sequence[int], mlp_ratio: float = 3.0,
                 drop_path: float = 0.0, temporal_group_size: int | None = None, global_only: bool = False):
        super().__init__()
        if temporal_group_size is None:
            temporal_group_size = default_temporal_group_size(dim)
        hidden = int(round(dim * mlp_ratio))
        self.norm_t = nn.LayerNorm(dim)
        self.fc_t = MorphFCt(dim, slab_size, temporal_group_size)
        self.norm_s = nn.LayerNorm(dim)
        self.fc_s = MorphFCs(dim, chunk_lengths, global_only=global_only)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        x = x_in + self.fc_t(self.norm_t(x_in))
        y = x_in + self.drop_path(self.fc_s(self.norm_s(x)))
        return y + self.drop_path(self.mlp(self.norm_mlp(y)))
