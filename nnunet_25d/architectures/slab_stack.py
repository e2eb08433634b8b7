"""Layers that turn a thin 3D patch into per-slice slabs for a 2D network, and back."""
from __future__ import annotations

import torch
from torch import nn

from nnunet_25d.slab import SlabGeometry


class SliceNeighbourhood(nn.Module):
    """(B, C, D, H, W) -> (B*D, S*C, H, W).

    Row ``b*D + z`` holds slices z-k .. z+k of patch ``b`` in that order, each with its C channels
    (channel index ``s*C + c``). Slices outside the patch repeat the nearest edge slice.
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
        return slabs.permute(0, 2, 3, 1, 4, 5).reshape(b * d, self.geometry.slab_size * c, h, w)


def unstack_slices(y: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(B*D, K, H, W) -> (B, K, D, H, W): per-slice 2D outputs back into a 3D patch."""
    bd, k, h, w = y.shape
    return y.reshape(batch_size, bd // batch_size, k, h, w).transpose(1, 2)
