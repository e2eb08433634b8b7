"""MorphMLPSlabNetwork: MorphMLPSlabUNet applied to every slice's slab of a thin 3D patch (nnU-Net's interface)."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from nnunet_25d.architectures.morph_mlp_unet import MorphMLPSlabUNet
from nnunet_25d.architectures.slab_network import SlabNetwork, in_plane
from nnunet_25d.architectures.blocks.slab_stack import SlabKept

MORPH_MLP_UNET = "nnunet_25d.architectures.morph_mlp_unet.MorphMLPSlabUNet"
# strides of the encoder's skips (two conv levels, four MorphMLP stages), with the slice axis nnU-Net's deep
# supervision needs; plans store them as ``strides``
MORPH_MLP_STRIDES = [[1, 1, 1]] + [[1, 2, 2]] * 5


class MorphMLPSlabNetwork(SlabNetwork):
    """Input (B, C, D, H, W) -> output (B, K, D, H, W) (a list with deep supervision, strides 1..16).

    Slice z's logits come from :class:`MorphMLPSlabUNet` on slices z-k..z+k: the slab reaches the network as a slab
    (slices stay apart, MorphFCt mixes them), not as stacked channels. ``strides`` is what the plans store for
    nnU-Net's deep supervision; it must match the encoder's. Every other keyword argument goes to
    :class:`MorphMLPSlabUNet`.
    """

    def __init__(self, input_channels: int, num_classes: int, slab_size: int, deep_supervision: bool = False,
                 strides: Sequence[Sequence[int]] = tuple(MORPH_MLP_STRIDES), **morph_kwargs):
        if in_plane(strides) != in_plane(MORPH_MLP_STRIDES):
            raise ValueError(f"MorphMLPSlabNetwork has skips at strides {MORPH_MLP_STRIDES}; plans say {strides}")
        super().__init__(input_channels, num_classes, slab_size, MORPH_MLP_UNET, deep_supervision, **morph_kwargs)

    def build_stem(self, input_channels: int, slab_size: int) -> nn.Module:
        return SlabKept(input_channels)

    def build_network_2d(self, network_class: type[nn.Module], input_channels: int, num_classes: int,
                         deep_supervision: bool, **kwargs) -> MorphMLPSlabUNet:
        return network_class(input_channels, num_classes, self.slab_size, deep_supervision=deep_supervision,
                             **kwargs)
