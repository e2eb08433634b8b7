"""MorphMLP layers (arXiv 2111.12527), tokens channels-last: chunked spatial mixing and per-pixel slice mixing.

Shapes: N batch, S slices of a slab, H x W tokens of one slice, C channels.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_25d.architectures.blocks.morph_mlp_chunks import ChunkLayout, ChunkSizeError, channels_per_token

__all__ = ["BranchReweighting", "ChunkMixing", "ChunkSizeError", "MorphFCs", "MorphFCt", "default_temporal_group_size"]


def _check_divides(dim: int, divisor: int, what: str) -> None:
    if divisor < 1 or dim % divisor != 0:
        raise ValueError(f"{what} {divisor} must be a positive divisor of the channel count {dim}")


class ChunkMixing(nn.Module):
    """(..., H, W, C) -> (..., H, W, C): one linear layer shared by all chunks of one spatial axis.

    ``axis="W"`` reads the tokens row by row, ``axis="H"`` column by column, and cuts that sequence into chunks of
    L = ``chunk_length`` tokens (padding and cropping as in :class:`~.morph_mlp_chunks.ChunkLayout`). Each token
    gives s = :func:`~.morph_mlp_chunks.channels_per_token` channels to each channel group (C/L, as in the paper,
    when L divides C); a group's channels of the L tokens of one chunk, concatenated token by token, form one
    vector of length L*s. All these vectors (every chunk, every group) go through the same
    ``nn.Linear(L*s, L*s)`` and are put back where they came from: a token mixes only with its chunk.
    """

    def __init__(self, dim: int, chunk_length: int, axis: str):
        super().__init__()
        if axis not in ("H", "W"):
            raise ValueError(f"axis must be 'H' or 'W', got {axis!r}")
        if chunk_length < 1:
            raise ValueError(f"chunk length must be positive, got {chunk_length}")
        self.dim, self.chunk_length, self.axis = dim, chunk_length, axis
        self.group_channels = channels_per_token(dim, chunk_length)
        self.groups = math.ceil(dim / self.group_channels)
        self.fc = nn.Linear(chunk_length * self.group_channels, chunk_length * self.group_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis == "H":
            x = x.transpose(-3, -2)  # columns become rows
        *lead, lines, line_length, c = x.shape
        layout = ChunkLayout.for_grid(self.chunk_length, lines, line_length)
        chunk, s, groups = self.chunk_length, self.group_channels, self.groups
        # zero-pad: channels to whole groups, each line to padded_line, the sequence's end to padded_tokens
        x = F.pad(x, (0, groups * s - c, 0, layout.padded_line - line_length))
        x = x.reshape(*lead, lines * layout.padded_line, groups * s)
        x = F.pad(x, (0, 0, 0, layout.padded_tokens - lines * layout.padded_line))
        n_chunks = layout.padded_tokens // chunk
        # (..., chunk, token in chunk, group, channel in group) -> one vector per (chunk, group)
        x = x.reshape(*lead, n_chunks, chunk, groups, s).transpose(-3, -2)
        x = self.fc(x.reshape(*lead, n_chunks, groups, chunk * s))
        x = x.reshape(*lead, n_chunks, groups, chunk, s).transpose(-3, -2).reshape(*lead, -1, groups * s)
        x = x[..., :lines * layout.padded_line, :c].reshape(*lead, lines, layout.padded_line, c)
        x = x[..., :line_length, :]
        return x.transpose(-3, -2) if self.axis == "H" else x

    def extra_repr(self) -> str:
        return f"axis={self.axis}, chunk_length={self.chunk_length}, channels_per_token={self.group_channels}"


class BranchReweighting(nn.Module):
    """Branches, each (N, ..., C) -> their weighted sum (N, ..., C) with per-sample, per-channel weights.

    The weights come from the mean of the summed branches over every token of a sample (all axes but the first
    and the last: for slab tokens (N, S, H, W, C) all slices and pixels, as the reference pools over all frames):
    Linear(C, C/``reduction``), GELU, Linear(C/``reduction``, ``n_branches`` * C), softmax over the branches (so
    for each channel they sum to one).
    """

    def __init__(self, dim: int, n_branches: int = 3, reduction: int = 4):
        super().__init__()
        self.n_branches = n_branches
        hidden = max(dim // reduction, 1)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, n_branches * dim))

    def forward(self, branches: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(branches) != self.n_branches:
            raise ValueError(f"expected {self.n_branches} branches, got {len(branches)}")
        first = branches[0]
        n, c = first.shape[0], first.shape[-1]
        pooled = torch.stack(list(branches)).sum(0).reshape(n, -1, c).mean(1)  # (N, C)
        weights = self.mlp(pooled).reshape(n, self.n_branches, c).softmax(dim=1)
        weights = weights.reshape(n, self.n_branches, *([1] * (first.ndim - 2)), c)
        return sum(weights[:, b] * branch for b, branch in enumerate(branches))


def chunk_length_pair(chunk_lengths: int | Sequence[int]) -> tuple[int, int]:
    """(L_H, L_W) from one length for both branches (what plans of older models store) or a pair."""
    if isinstance(chunk_lengths, int):
        return chunk_lengths, chunk_lengths
    pair = tuple(chunk_lengths)
    if len(pair) != 2:
        raise ValueError(f"chunk lengths: one int or a pair (H branch, W branch), got {chunk_lengths!r}")
    return pair


class MorphFCs(nn.Module):
    """(N, ..., H, W, C) -> (N, ..., H, W, C): MorphMLP's spatial layer (every slice on its own).

    Three branches: :class:`ChunkMixing` along H, :class:`ChunkMixing` along W (``chunk_lengths``: (L_H, L_W), or
    one length for both), and a per-token channel ``nn.Linear(C, C)``; combined by :class:`BranchReweighting`
    (pooled over all the sample's tokens), then a linear projection.

    ``global_only``: the reference's last stage (``MorphFC_S2``): two branches, one :class:`ChunkMixing` over the
    tokens read row by row with chunks of L_W tokens (the whole grid there: global mixing) and the channel branch.
    """

    def __init__(self, dim: int, chunk_lengths: int | Sequence[int], reweight_reduction: int = 4,
                 global_only: bool = False):
        super().__init__()
        length_h, length_w = chunk_length_pair(chunk_lengths)
        self.global_only = global_only
        if not global_only:
            self.mix_h = ChunkMixing(dim, length_h, "H")
        self.mix_w = ChunkMixing(dim, length_w, "W")
        self.mix_c = nn.Linear(dim, dim)
        self.reweight = BranchReweighting(dim, 2 if global_only else 3, reweight_reduction)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_only:
            return self.proj(self.reweight([self.mix_w(x), self.mix_c(x)]))
        return self.proj(self.reweight([self.mix_h(x), self.mix_w(x), self.mix_c(x)]))


def default_temporal_group_size(dim: int) -> int:
    """The largest divisor of ``dim`` not above dim/8: at least 8 channel groups, as in the reference's 8 segments."""
    return max(d for d in range(1, max(dim // 8, 1) + 1) if dim % d == 0)


class MorphFCt(nn.Module):
    """(N, S, H, W, C) -> (N, S, H, W, C): MorphMLP's temporal layer, here mixing the slices of a slab.

    Channels are split into C/D groups of D = ``group_size``. At each pixel, the S*D values of one group (its D
    channels on all S slices, concatenated slice by slice) go through one ``nn.Linear(S*D, S*D)`` (``fc``) shared
    by all groups and all pixels; then ``proj``, an ``nn.Linear(C, C)`` over each token's channels, as in the
    reference. Nothing mixes across pixels.

    Start (:meth:`reset_parameters`): ``fc`` zero (weight and bias), so a residual block around the layer starts as
    the identity, as in the reference; ``proj`` the identity matrix and zero bias, where the reference fills it with
    ones: with ones every channel of ``fc``'s output would get the same gradient (the sum over all C outputs), with
    the identity each gets its own, as without the projection.
    """

    def __init__(self, dim: int, slab_size: int, group_size: int):
        super().__init__()
        _check_divides(dim, group_size, "temporal group size")
        self.dim, self.slab_size, self.group_size = dim, slab_size, group_size
        self.fc = nn.Linear(slab_size * group_size, slab_size * group_size)
        self.proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        nn.init.eye_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s, h, w, c = x.shape
        if s != self.slab_size:
            raise ValueError(f"MorphFCt was built for slabs of {self.slab_size} slices, got {s}")
        d = self.group_size
        groups = x.reshape(n, s, h, w, c // d, d).permute(0, 2, 3, 4, 1, 5).reshape(n, h, w, c // d, s * d)
        mixed = self.fc(groups).reshape(n, h, w, c // d, s, d)
        return self.proj(mixed.permute(0, 4, 1, 2, 3, 5).reshape(n, s, h, w, c))
