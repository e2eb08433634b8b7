"""MorphMLPSlabUNet: a MorphMLP slab encoder (arXiv 2111.12527) with nnU-Net's convolutional U-Net decoder."""
from __future__ import annotations

from typing import Sequence

import torch
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_25d.architectures.morph_mlp_encoder import PATCH_EMBED_STRIDE, MorphMLPSlabEncoder
from nnunet_25d.architectures.morph_mlp_layers import ChunkSizeError, MorphFCt

MORPH_MLP_SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "N": {"depths": (1, 1, 2, 1), "dims": (32, 64, 128, 256)},  # nano: CPU tests and smoke runs
    "T": {"depths": (3, 4, 7, 3), "dims": (84, 168, 336, 588)},  # the paper's MorphMLP-T
    "S": {"depths": (3, 4, 9, 3), "dims": (112, 224, 392, 784)},  # the paper's MorphMLP-S
}


def chunk_lengths_for(patch_in_plane: Sequence[int], dims: Sequence[int],
                      row_fractions: Sequence[float] = (0.25, 1.0, 1.0, 1.0)) -> list[int]:
    """Chunk length of each MorphMLP stage (strides 4, 8, 16, 32, ...) for an in-plane patch size.

    At stage i the tokens form an h x w grid (patch / stride). Its chunk length is the largest L that divides h, w
    and ``dims[i]`` and is at most ``row_fractions[i]`` * min(h, w) (at least 1). So chunks never wrap from one row
    or column into the next, the channels split into L equal groups, and with growing fractions the mixing grows
    from local (a quarter row at stride 4) to whole rows/columns deeper down. L = 1 (only possible when h, w and the
    dim share no factor) leaves that stage's H/W branches without spatial mixing.

    Raises :class:`ChunkSizeError` when the patch is not divisible by the largest stride.
    """
    if len(row_fractions) != len(dims):
        raise ValueError(f"need one row fraction per stage: {len(row_fractions)} fractions for {len(dims)} dims")
    h, w = patch_in_plane
    largest = PATCH_EMBED_STRIDE * 2 ** (len(dims) - 1)
    if h % largest or w % largest:
        raise ChunkSizeError(f"in-plane patch size {h}x{w} is not divisible by {largest}, the encoder's largest "
                             f"stride: choose a patch size that is a multiple of {largest} in both axes")
    lengths = []
    for i, (dim, fraction) in enumerate(zip(dims, row_fractions)):
        sh, sw = h // (PATCH_EMBED_STRIDE * 2 ** i), w // (PATCH_EMBED_STRIDE * 2 ** i)
        cap = max(int(fraction * min(sh, sw)), 1)
        lengths.append(max(n for n in range(1, cap + 1) if sh % n == 0 and sw % n == 0 and dim % n == 0))
    return lengths


class MorphMLPSlabUNet(nn.Module):
    """Slabs (N, C, S, H, W) -> logits of the centre slice (N, K, H, W); with deep supervision the decoder's list
    (highest resolution first, strides 1, 2, 4, 8, 16).

    Encoder: :class:`MorphMLPSlabEncoder` (skips at strides 1..32); decoder: DNA's ``UNetDecoder`` on those 2D
    skips (``self.decoder``, whose ``deep_supervision`` nnU-Net toggles). ``depths``/``dims`` e.g. from
    :data:`MORPH_MLP_SIZES`, ``chunk_lengths`` from :func:`chunk_lengths_for` for the planned patch size.
    ``temporal_group_size``: channels per slice-mixing group, one int for all stages, one per stage, or None for
    the largest divisor of each stage's dim not above dim/8.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        slab_size: int,
        depths: Sequence[int],
        dims: Sequence[int],
        chunk_lengths: Sequence[int],
        conv_features: Sequence[int] = (32, 64),
        mlp_ratio: float = 3.0,
        drop_path_rate: float = 0.1,
        temporal_group_size: int | Sequence[int] | None = None,
        n_conv_per_stage_encoder: int = 2,
        n_conv_per_stage_decoder: int | Sequence[int] = 2,
        deep_supervision: bool = False,
    ):
        super().__init__()
        self.encoder = MorphMLPSlabEncoder(
            input_channels, slab_size, depths, dims, chunk_lengths, conv_features, n_conv_per_stage_encoder,
            mlp_ratio, drop_path_rate, temporal_group_size,
        )
        self.decoder = UNetDecoder(self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision)

    def forward(self, slabs: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.decoder(self.encoder(slabs))

    def initialize(self, module: nn.Module) -> None:
        """For ``network.apply(network.initialize)``: He init (DNA) for convolutions, truncated normal (std 0.02)
        with zero bias for linear layers, unit/zero LayerNorms; slice mixing (:class:`MorphFCt`) is set back to
        zero, so that every block still starts as identity in its slice mixing (``apply`` reaches a module after
        its children)."""
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
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
