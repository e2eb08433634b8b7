"""MorphMLP layers (arXiv 2111.12527), tokens channels-last: chunked spatial mixing and per-pixel slice mixing.

Shapes: N batch, S slices of a slab, H x W tokens of one slice, C channels.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ChunkSizeError(ValueError):
    """A token grid that the chosen chunk length does not split evenly."""


def _check_divides(dim: int, divisor: int, what: str) -> None:
    if divisor < 1 or dim % divisor != 0:
        raise ValueError(f"{what} {divisor} must be a positive divisor of the channel count {dim}")


class ChunkMixing(nn.Module):
    """(N, H, W, C) -> (N, H, W, C): one linear layer shared by all chunks of one spatial axis.

    ``axis="W"`` cuts every row into chunks of L = ``chunk_length`` neighbouring tokens, ``axis="H"`` every
    column. Channels are split into L groups of C/L. The group-g channels of the L tokens of one chunk, concatenated
    token by token, form one vector of length C; all these vectors (every chunk, every group) go through the same
    ``nn.Linear(C, C)`` and are put back where they came from. A token therefore only mixes with the tokens of its
    own chunk; chunks never wrap from one row (column) into the next, so the axis length must be a multiple of L.
    """

    def __init__(self, dim: int, chunk_length: int, axis: str):
        super().__init__()
        if axis not in ("H", "W"):
            raise ValueError(f"axis must be 'H' or 'W', got {axis!r}")
        _check_divides(dim, chunk_length, "chunk length")
        self.dim, self.chunk_length, self.axis = dim, chunk_length, axis
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis == "H":
            x = x.transpose(1, 2)  # columns become rows: (N, W, H, C)
        n, rows, length, c = x.shape
        chunk = self.chunk_length
        if length % chunk != 0:
            raise ChunkSizeError(
                f"{self.axis} axis of length {length} cannot be cut into chunks of {chunk} tokens (stage dim {c}): "
                f"choose a patch size / chunk length so that the chunk length divides {length}"
            )
        group = c // chunk
        # (N, rows, chunks, token in chunk, channel group, channel in group) -> one vector per (chunk, group)
        x = x.reshape(n, rows, length // chunk, chunk, chunk, group).transpose(3, 4)
        x = self.fc(x.reshape(n, rows, length // chunk, chunk, c))
        x = x.reshape(n, rows, length // chunk, chunk, chunk, group).transpose(3, 4).reshape(n, rows, length, c)
        return x.transpose(1, 2) if self.axis == "H" else x


class BranchReweighting(nn.Module):
    """Branches, each (N, ..., C) -> their weighted sum (N, ..., C) with per-sample, per-channel weights.

    The weights come from the token mean of the summed branches: Linear(C, C/``reduction``), GELU,
    Linear(C/``reduction``, ``n_branches`` * C), softmax over the branches (so for each channel they sum to one).
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


class MorphFCs(nn.Module):
    """(N, H, W, C) -> (N, H, W, C): MorphMLP's spatial layer.

    Three branches: :class:`ChunkMixing` along H, :class:`ChunkMixing` along W, and a per-token channel
    ``nn.Linear(C, C)``; combined by :class:`BranchReweighting`, then a linear projection.
    """

    def __init__(self, dim: int, chunk_length: int, reweight_reduction: int = 4):
        super().__init__()
        self.mix_h = ChunkMixing(dim, chunk_length, "H")
        self.mix_w = ChunkMixing(dim, chunk_length, "W")
        self.mix_c = nn.Linear(dim, dim)
        self.reweight = BranchReweighting(dim, 3, reweight_reduction)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.reweight([self.mix_h(x), self.mix_w(x), self.mix_c(x)]))


def default_temporal_group_size(dim: int) -> int:
    """The largest divisor of ``dim`` not above dim/8: at least 8 channel groups, as in the reference's 8 segments."""
    return max(d for d in range(1, max(dim // 8, 1) + 1) if dim % d == 0)


class MorphFCt(nn.Module):
    """(N, S, H, W, C) -> (N, S, H, W, C): MorphMLP's temporal layer, here mixing the slices of a slab.

    Channels are split into C/D groups of D = ``group_size``. At each pixel, the S*D values of one group (its D
    channels on all S slices, concatenated slice by slice) go through one ``nn.Linear(S*D, S*D)`` shared by all
    groups and all pixels. Nothing mixes across pixels. The layer is zero-initialised (weight and bias), so a
    residual block around it starts as the identity; :meth:`reset_parameters` restores that.
    """

    def __init__(self, dim: int, slab_size: int, group_size: int):
        super().__init__()
        _check_divides(dim, group_size, "temporal group size")
        self.dim, self.slab_size, self.group_size = dim, slab_size, group_size
        self.fc = nn.Linear(slab_size * group_size, slab_size * group_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s, h, w, c = x.shape
        if s != self.slab_size:
            raise ValueError(f"MorphFCt was built for slabs of {self.slab_size} slices, got {s}")
        d = self.group_size
        groups = x.reshape(n, s, h, w, c // d, d).permute(0, 2, 3, 4, 1, 5).reshape(n, h, w, c // d, s * d)
        mixed = self.fc(groups).reshape(n, h, w, c // d, s, d)
        return mixed.permute(0, 4, 1, 2, 3, 5).reshape(n, s, h, w, c)
