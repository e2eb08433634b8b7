"""UV-Net-style depth reduction: 3D convolutions without padding along the slices turn a slab into one slice."""
from __future__ import annotations

import torch
from torch import nn

from nnunet_25d.architectures.slab_network import SlabNetwork


class DepthReductionBlock(nn.Sequential):
    """(N, C_in, S, H, W) -> (N, C_out, S-2, H, W): 3x3x3 convolution, padded in-plane only, norm, non-linearity."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 1e-2):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=(0, 1, 1)),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.LeakyReLU(negative_slope, inplace=True),
        )


class DepthReduction(nn.Module):
    """(N, C, S, H, W) -> (N, features, H, W) through (S-1)/2 stacked :class:`DepthReductionBlock` s.

    Why not just slab-as-channels: one 3x3x3 convolution without z padding over 3 slices has exactly the weights of
    a 3x3 2D convolution over 3*C channels. What differs here is depth: for 5 or 7 slices the reduction is
    learned in stages (each 3x3x3 block sees 3 neighbouring slices, with normalisation and a non-linearity between
    blocks), so slices are fused hierarchically, near neighbours first, instead of in one linear map.
    """

    def __init__(self, in_channels: int, slab_size: int, features: int = 32):
        super().__init__()
        n_blocks = slab_size // 2
        channels = [in_channels] + [features] * n_blocks
        self.blocks = nn.Sequential(*(DepthReductionBlock(a, b) for a, b in zip(channels[:-1], channels[1:])))
        self.out_channels = channels[-1]

    def forward(self, slabs: torch.Tensor) -> torch.Tensor:
        reduced = self.blocks(slabs)
        assert reduced.shape[2] == 1, f"depth reduction left {reduced.shape[2]} slices"
        return reduced[:, :, 0]


class DepthReductionNetwork(SlabNetwork):
    """:class:`SlabNetwork` whose stem is a learned :class:`DepthReduction` instead of slab-as-channels.

    Input (B, C, D, H, W) -> output (B, K, D, H, W) (a list with deep supervision).
    """

    def __init__(self, input_channels: int, num_classes: int, slab_size: int, reduction_features: int = 32,
                 **kwargs):
        self.reduction_features = reduction_features
        super().__init__(input_channels, num_classes, slab_size, **kwargs)

    def build_stem(self, input_channels: int, slab_size: int) -> nn.Module:
        return DepthReduction(input_channels, slab_size, self.reduction_features)
