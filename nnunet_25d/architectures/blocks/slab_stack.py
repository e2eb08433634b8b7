"""Layers that turn a thin 3D patch into per-slice slabs for a 2D network, and back."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_25d.geometry.slab import SlabGeometry


class SliceNeighbourhood(nn.Module):
    """Slabs of a thin 3D patch (B, C, D, H, W): for slice z, slices z-k .. z+k in order, as (N, C, S, H, W).

    ``forward`` gives the slabs of every slice (row ``b*D + z``), zero slices beyond the patch's ends; ``interior``
    only those of the D - 2k slices whose slab lies inside the patch (row ``b*(D-2k) + z - k``).
    """

    def __init__(self, slab_size: int):
        super().__init__()
        self.geometry = SlabGeometry(slab_size)

    def windows(self, x: torch.Tensor, zero_padded: bool = True) -> torch.Tensor:
        """(B, C, D', H, W, S) view: window z holds slab z (D' = D zero-padded, D - 2k without padding)."""
        k = self.geometry.half_width
        if zero_padded:
            x = F.pad(x, (0, 0, 0, 0, k, k))
        return x.unfold(2, self.geometry.slab_size, 1)

    @staticmethod
    def gather(windows: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Slabs of rows ``b*D' + z`` of :meth:`windows` as (len(rows), C, S, H, W)."""
        depth = windows.shape[2]
        return windows[rows // depth, :, rows % depth].permute(0, 1, 4, 2, 3)

    @staticmethod
    def slices_with_data(x: torch.Tensor) -> torch.Tensor:
        """(B, D) bool: True where slice z holds a non-zero voxel in any channel."""
        return x.ne(0).flatten(3).any(-1).any(1)

    def slabs_with_data(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) bool: True where slice z's slab holds a non-zero voxel."""
        k = self.geometry.half_width
        has_data = self.slices_with_data(x).float()
        return F.pad(has_data, (k, k)).unfold(1, self.geometry.slab_size, 1).amax(-1) > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows = self.windows(x)
        return self.gather(windows, torch.arange(windows.shape[0] * windows.shape[2], device=x.device))

    def interior(self, x: torch.Tensor) -> torch.Tensor:
        windows = self.windows(x, zero_padded=False)
        return self.gather(windows, torch.arange(windows.shape[0] * windows.shape[2], device=x.device))


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
