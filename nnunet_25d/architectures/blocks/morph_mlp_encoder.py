"""Slab encoder for a U-Net: two convolutional levels on the stacked slab, then MorphMLP stages at strides 4..32."""
from __future__ import annotations

from typing import Sequence, Type

import torch
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks
from torch import nn

from nnunet_25d.architectures.blocks.morph_mlp_block import MorphBlock
from nnunet_25d.architectures.blocks.morph_mlp_chunks import PATCH_EMBED_STRIDE, stage_grids
from nnunet_25d.architectures.blocks.morph_mlp_layers import chunk_length_pair, default_temporal_group_size
from nnunet_25d.architectures.blocks.slab_stack import SlabAsChannels


class SlicePatchMerging(nn.Module):
    """(N, S, H, W, C_in) -> (N, S, H/k, W/k, C_out): a k x k, stride-k Conv2d on every slice (never along the
    slices), then LayerNorm over channels. k = 4 embeds pixels as tokens, k = 2 downsamples between stages."""

    def __init__(self, in_channels: int, out_channels: int, factor: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=factor, stride=factor)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s, h, w, c = x.shape
        y = self.conv(x.reshape(n * s, h, w, c).permute(0, 3, 1, 2))
        return self.norm(y.permute(0, 2, 3, 1).reshape(n, s, *y.shape[2:], y.shape[1]))


class OverlappingSliceDownsample(nn.Module):
    """(N, S, H, W, C_in) -> (N, S, H/2, W/2, C_out): the reference's ``Downsample`` — a 3x3, stride-2 convolution
    (padding 1) on every slice (never along the slices), then LayerNorm over channels."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s, h, w, c = x.shape
        y = self.conv(x.reshape(n * s, h, w, c).permute(0, 3, 1, 2))
        return self.norm(y.permute(0, 2, 3, 1).reshape(n, s, *y.shape[2:], y.shape[1]))


class OverlappingPatchEmbedding(nn.Module):
    """Slabs (N, C_in, S, H, W) -> tokens (N, S, H/4, W/4, C): the reference's ``PatchEmbed`` — a 3x3x3 convolution
    (padding 1) to C/2 channels, BatchNorm, GELU, a 1x3x3 convolution (padding 0, 1, 1) to C channels, BatchNorm;
    both stride 2 in-plane. The reference's first convolution also strides the frames by 2; here the slices keep
    stride 1 (every slice of the slab stays a token plane; its 3 taps along the slices still mix neighbours)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"the patch embedding halves its {out_channels} channels first: use an even dim")
        half = out_channels // 2
        self.proj1 = nn.Conv3d(in_channels, half, (3, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1))
        self.norm1 = nn.BatchNorm3d(half)
        self.act = nn.GELU()
        self.proj2 = nn.Conv3d(half, out_channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.norm2 = nn.BatchNorm3d(out_channels)

    def forward(self, slabs: torch.Tensor) -> torch.Tensor:
        x = self.norm2(self.proj2(self.act(self.norm1(self.proj1(slabs)))))
        return x.permute(0, 2, 3, 4, 1)


PATCH_EMBEDDINGS = ("linear", "reference")
LAST_STAGES = ("chunks", "reference")


class MorphMLPSlabEncoder(nn.Module):
    """Slabs (N, C_in, S, H, W) -> list of 2D skips (N, C_l, H/stride_l, W/stride_l), strides 1, 2, 4, ..., 32.

    Levels 0 and 1 are convolutional on the slab stacked as S*C_in channels (``n_conv_per_stage`` 3x3 convolutions,
    norm, non-linearity; stride 1, then 2), with ``conv_features`` channels. The levels after them are MorphMLP
    stages working on every slice: a 4x4 stride-4 patch embedding of each slice (+ LayerNorm; the slices are never
    strided), ``depths[i]`` :class:`MorphBlock` s, and a 2x2 stride-2 convolution per slice (+ LayerNorm) between
    stages. Stochastic depth grows linearly from 0 to ``drop_path_rate`` over all blocks. A stage's skip is its
    centre slice (which has seen the whole slab through the blocks' slice mixing), LayerNorm-ed, channels-first.

    ``chunk_lengths``: per stage the spatial layer's (L_H, L_W), e.g. from
    :func:`~nnunet_25d.architectures.blocks.morph_mlp_chunks.chunk_lengths_for` for the planned patch, or one int for both
    branches (plans of older models). ``temporal_group_size``: one int for all stages, one per stage, or None for
    :func:`~nnunet_25d.architectures.blocks.morph_mlp_layers.default_temporal_group_size` of each stage's dim.

    ``patch_embedding``: ``"reference"`` embeds and downsamples as MTLab's code (:class:`OverlappingPatchEmbedding`,
    :class:`OverlappingSliceDownsample`: overlapping 3x3 stride-2 convolutions); ``"linear"`` (the default, what
    plans written before the choice existed build) with the non-overlapping 4x4 / 2x2 convolutions and LayerNorm of
    :class:`SlicePatchMerging`. ``last_stage``: ``"reference"`` gives the deepest stage MTLab's two-branch spatial
    layer (one global branch and the channel branch); ``"chunks"`` (the default) the three branches of the others.

    The attributes that DNA's ``UNetDecoder`` reads (``output_channels``, ``strides``, ``kernel_sizes``,
    ``conv_op``, ``conv_bias``, norm / dropout / non-linearity and their kwargs) describe the decoder's convolutions.
    The in-plane size must be divisible by the largest stride; chunks that do not fit a stage's token grid are
    zero-padded (see :class:`~nnunet_25d.architectures.blocks.morph_mlp_chunks.ChunkLayout`).
    """

    def __init__(
        self,
        input_channels: int,
        slab_size: int,
        depths: Sequence[int],
        dims: Sequence[int],
        chunk_lengths: Sequence[int | Sequence[int]],
        conv_features: Sequence[int] = (32, 64),
        n_conv_per_stage: int = 2,
        mlp_ratio: float = 3.0,
        drop_path_rate: float = 0.1,
        temporal_group_size: int | Sequence[int] | None = None,
        conv_bias: bool = True,
        norm_op: Type[nn.Module] = nn.InstanceNorm2d,
        norm_op_kwargs: dict | None = None,
        nonlin: Type[nn.Module] = nn.LeakyReLU,
        nonlin_kwargs: dict | None = None,
        patch_embedding: str = "linear",
        last_stage: str = "chunks",
    ):
        super().__init__()
        if patch_embedding not in PATCH_EMBEDDINGS or last_stage not in LAST_STAGES:
            raise ValueError(f"patch_embedding is one of {PATCH_EMBEDDINGS} (got {patch_embedding!r}), last_stage one "
                             f"of {LAST_STAGES} (got {last_stage!r})")
        self.patch_embedding, self.last_stage = patch_embedding, last_stage
        n_morph = len(dims)
        if not (len(depths) == len(chunk_lengths) == n_morph >= 1):
            raise ValueError(f"depths {tuple(depths)}, dims {tuple(dims)} and chunk_lengths {tuple(chunk_lengths)} "
                             "need one entry per MorphMLP stage")
        if len(conv_features) != 2:
            raise ValueError(f"conv_features needs two entries (strides 1 and 2), got {tuple(conv_features)}")
        if temporal_group_size is None:
            group_sizes = [default_temporal_group_size(d) for d in dims]
        elif isinstance(temporal_group_size, int):
            group_sizes = [temporal_group_size] * n_morph
        else:
            group_sizes = list(temporal_group_size)
        self.input_channels, self.slab_size = input_channels, slab_size
        self.depths, self.dims = list(depths), list(dims)
        self.chunk_lengths = [chunk_length_pair(lengths) for lengths in chunk_lengths]
        self.morph_strides = [PATCH_EMBED_STRIDE * 2 ** i for i in range(n_morph)]

        # what UNetDecoder reads
        self.conv_op = nn.Conv2d
        self.conv_bias = conv_bias
        self.norm_op = norm_op
        self.norm_op_kwargs = {"eps": 1e-5, "affine": True} if norm_op_kwargs is None else norm_op_kwargs
        self.dropout_op, self.dropout_op_kwargs = None, None
        self.nonlin = nonlin
        self.nonlin_kwargs = {"inplace": True} if nonlin_kwargs is None else nonlin_kwargs
        self.output_channels = list(conv_features) + list(dims)
        self.strides = [[1, 1]] + [[2, 2]] * (len(self.output_channels) - 1)
        self.kernel_sizes = [[3, 3]] * len(self.output_channels)

        self.stack = SlabAsChannels(input_channels, slab_size)
        conv_in = [self.stack.out_channels, conv_features[0]]
        self.conv_stages = nn.ModuleList(
            StackedConvBlocks(n_conv_per_stage, nn.Conv2d, c_in, c_out, 3, stride, conv_bias, norm_op,
                              self.norm_op_kwargs, None, None, nonlin, self.nonlin_kwargs)
            for c_in, c_out, stride in zip(conv_in, conv_features, (1, 2))
        )

        if patch_embedding == "reference":
            self.patch_embed = OverlappingPatchEmbedding(input_channels, dims[0])
            self.downsamples = nn.ModuleList(OverlappingSliceDownsample(a, b) for a, b in zip(dims[:-1], dims[1:]))
        else:
            self.patch_embed = SlicePatchMerging(input_channels, dims[0], PATCH_EMBED_STRIDE)
            self.downsamples = nn.ModuleList(SlicePatchMerging(a, b, 2) for a, b in zip(dims[:-1], dims[1:]))
        n_blocks = sum(depths)
        rates = [drop_path_rate * b / max(n_blocks - 1, 1) for b in range(n_blocks)]  # 0 .. drop_path_rate
        self.stages = nn.ModuleList()
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            first = sum(depths[:i])
            self.stages.append(nn.Sequential(*(
                MorphBlock(dim, slab_size, self.chunk_lengths[i], mlp_ratio, rates[first + b], group_sizes[i],
                           global_only=last_stage == "reference" and i == n_morph - 1)
                for b in range(depth)
            )))
        self.skip_norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)

    def check_patch_size(self, patch_in_plane: Sequence[int]) -> None:
        """Raise :class:`~nnunet_25d.architectures.blocks.morph_mlp_chunks.ChunkSizeError` unless the in-plane patch is a
        multiple of the encoder's largest stride."""
        stage_grids(patch_in_plane, len(self.dims))

    def forward(self, slabs: torch.Tensor) -> list[torch.Tensor]:
        if slabs.ndim != 5 or slabs.shape[1] != self.input_channels or slabs.shape[2] != self.slab_size:
            raise ValueError(f"expected slabs (N, {self.input_channels}, {self.slab_size}, H, W), "
                             f"got shape {tuple(slabs.shape)}")
        self.check_patch_size(slabs.shape[-2:])
        skips = []
        x = self.stack(slabs)
        for stage in self.conv_stages:
            x = stage(x)
            skips.append(x)
        centre = self.slab_size // 2
        if self.patch_embedding == "reference":
            tokens = self.patch_embed(slabs)  # (N, S, H/4, W/4, C)
        else:
            tokens = self.patch_embed(slabs.permute(0, 2, 3, 4, 1))
        for i, blocks in enumerate(self.stages):
            if i > 0:
                tokens = self.downsamples[i - 1](tokens)
            tokens = blocks(tokens)
            skips.append(self.skip_norms[i](tokens[:, centre]).permute(0, 3, 1, 2).contiguous())
        return skips
