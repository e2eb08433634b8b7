"""MorphMLPSlabUNet: a MorphMLP slab encoder (arXiv 2111.12527) with nnU-Net's convolutional U-Net decoder."""
from __future__ import annotations

from typing import Sequence

import torch
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_25d.architectures.blocks.morph_mlp_chunks import chunk_lengths_for
from nnunet_25d.architectures.blocks.morph_mlp_encoder import MorphMLPSlabEncoder
from nnunet_25d.architectures.blocks.morph_mlp_layers import MorphFCt

__all__ = ["MORPH_MLP_SIZES", "MorphMLPSlabUNet", "chunk_lengths_for"]

MORPH_MLP_SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "N": {"depths": (1, 1, 2, 1), "dims": (32, 64, 128, 256)},  # nano: CPU tests and smoke runs
    "T": {"depths": (3, 4, 7, 3), "dims": (84, 168, 336, 588)},  # the paper's MorphMLP-T
    "S": {"depths": (3, 4, 9, 3), "dims": (112, 224, 392, 784)},  # the paper's MorphMLP-S
}


class MorphMLPSlabUNet(nn.Module):
    """Slabs (N, C, S, H, W) -> logits of the centre slice (N, K, H, W); with deep supervision the decoder's list
    (highest resolution first, strides 1, 2, 4, 8, 16).

    Encoder: :class:`MorphMLPSlabEncoder` (skips at strides 1..32); decoder: DNA's ``UNetDecoder`` on those 2D
    skips (``self.decoder``, whose ``deep_supervision`` nnU-Net toggles). ``depths``/``dims`` e.g. from
    :data:`MORPH_MLP_SIZES`, ``chunk_lengths`` (per stage (L_H, L_W), or one int for both branches) from
    :func:`~nnunet_25d.architectures.blocks.morph_mlp_chunks.chunk_lengths_for` for the planned patch size.
    ``temporal_group_size``: channels per slice-mixing group, one int for all stages, one per stage, or None for
    the largest divisor of each stage's dim not above dim/8. ``patch_embedding`` / ``last_stage``: ``"reference"``
    for MTLab's overlapping convolutional embedding and two-branch last stage; the defaults (``"linear"``,
    ``"chunks"``) build what plans written before these choices existed describe.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        slab_size: int,
        depths: Sequence[int],
        dims: Sequence[int],
        chunk_lengths: Sequence[int | Sequence[int]],
        conv_features: Sequence[int] = (32, 64),
        mlp_ratio: float = 3.0,
        drop_path_rate: float = 0.1,
        temporal_group_size: int | Sequence[int] | None = None,
        n_conv_per_stage_encoder: int = 2,
        n_conv_per_stage_decoder: int | Sequence[int] = 2,
        deep_supervision: bool = False,
        patch_embedding: str = "linear",
        last_stage: str = "chunks",
    ):
        super().__init__()
        self.encoder = MorphMLPSlabEncoder(
            input_channels, slab_size, depths, dims, chunk_lengths, conv_features, n_conv_per_stage_encoder,
            mlp_ratio, drop_path_rate, temporal_group_size,
            patch_embedding=patch_embedding, last_stage=last_stage,
        )
        self.decoder = UNetDecoder(self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision)

    def forward(self, slabs: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.decoder(self.encoder(slabs))

    def initialize(self, module: nn.Module) -> None:
        """For ``network.apply(network.initialize)``: He init (DNA) for convolutions, truncated normal (std 0.02)
        with zero bias for linear layers, unit/zero LayerNorms; slice mixing (:class:`MorphFCt`) is set back to
        its start (zero mixing, identity projection), so that every block still starts as identity in its slice
        mixing (``apply`` reaches a module after its children)."""
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d)):
            InitWeights_He(1e-2)(module)
        elif isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, MorphFCt):
            module.reset_parameters()
