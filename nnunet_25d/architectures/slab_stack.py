"""Layers that turn a thin 3D patch into per-slice slabs for a 2D network, and back."""
from __future__ import annotations

import torch
from torch import nn

from nnunet_25d.slab import SlabGeometry


class SliceNeighbourhood(nn.Module):
    """(B, C, D, H, W) -> (B*D, C, S, H, W): for every slice z of every patch, slices z-k .. z+k in order.

    Row ``b*D + z`` belongs to slice z of patch b. Slices outside the patch repeat the nearest edge slice.
    """

    def __init__(self, slab_size: int):
        super().__init__()
        self.geometry = SlabGeometry(slab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        k = self.geometry.half_width
        offsets = torch.arange(-k, k + 1, device=x.device)
        index = (torch.arange(d, device=x.device)[:, None] + offsets[None]).clamp_(0, d - 1)  # (D, S)
        slabs = x[:, :, index]  # (B, C, D, S, H, W)
        return slabs.transpose(1, 2).reshape(b * d, c, self.geometry.slab_size, h, w)


class SlabAsChannels(nn.Module):
    """(N, C, S, H, W) -> (N, S*C, H, W), channel index ``s*C + c``: the slab as input channels of a 2D network."""

    def __init__(self, in_channels: int, slab_size: int):
        super().__init__()
        self.out_channels = in_channels * slab_size

    def forward(self, slabs: torch.Tensor) -> torch.Tensor:
        n, c, s, h, w = slabs.shape
        return slabs.transpose(1, 2).reshape(n, s * c, h, w)


class SlabKept(nn.Identity):
    """(N, C, S, H, W) unchanged, for networks that take the slab itself (``out_channels`` = C)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.out_channels = in_channels


def unstack_slices(y: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(B*D, K, H, W) -> (B, K, D, H, W): per-slice 2D outputs back into a 3D patch."""
    bd, k, h, w = y.shape
    return y.reshape(batch_size, bd // batch_size, k, h, w).transpose(1, 2)
