"""MorphMLP chunking (arXiv 2111.12527): how a token grid is cut into chunks, and which chunk length each stage uses.

The layout follows MTLab's reference code: the W branch reads the tokens of a slice row by row (the H branch column
by column) as one sequence and cuts it into chunks of L consecutive tokens. L up to a line is a fraction of a line,
L a multiple of the line is whole lines, L of every token is global mixing. Where L does not fit the grid the
sequence is zero-padded (each line to a multiple of L when L is shorter than a line, the end of the sequence to a
multiple of L otherwise) and the padding is cropped afterwards; :func:`chunk_lengths_for` picks lengths that need
none at the patches it plans for.

Inside a chunk each token gives ``s`` channels to each of ``ceil(C / s)`` channel groups; the chunk's s channels of
one group, concatenated token by token, are one vector of length L*s for the branch's single linear layer. The
reference has s = C / L (L channel groups, vectors of length C); where L does not divide C, s = round(C / L)
keeps the vectors as close to C as possible and the last group is zero-padded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from nnunet_25d.errors import SetupError

PATCH_EMBED_STRIDE = 4
# fraction of a line (W branch: a row; H branch: a column) per stage before the deepest, which mixes globally:
# the reference's 14, 28, 28, 49 tokens on 56/28/14/7 grids = a quarter line, one line, two lines, everything
REFERENCE_LINE_FRACTIONS = (0.25, 1.0, 2.0)


class ChunkSizeError(SetupError):
    """A patch size the MorphMLP encoder cannot cut into its stages' token grids."""


def channels_per_token(dim: int, chunk_length: int) -> int:
    """Channels each token gives to one chunk vector: C / L as in the reference when L divides C, else the
    rounded quotient (at least 1)."""
    return max(1, round(dim / chunk_length))


@dataclass(frozen=True)
class ChunkLayout:
    """The padded sequence one branch cuts into chunks: ``lines`` lines (rows for the W branch, columns for H) of
    ``line_length`` tokens, each zero-padded to ``padded_line``, read line after line and zero-padded at the end
    to ``padded_tokens`` (a multiple of ``chunk_length``)."""

    chunk_length: int
    lines: int
    line_length: int
    padded_line: int
    padded_tokens: int

    @classmethod
    def for_grid(cls, chunk_length: int, lines: int, line_length: int) -> "ChunkLayout":
        if chunk_length < 1:
            raise ValueError(f"chunk length must be positive, got {chunk_length}")
        padded_line = line_length
        if chunk_length <= line_length:  # chunks inside a line: never wrap into the next one
            padded_line = math.ceil(line_length / chunk_length) * chunk_length
        padded_tokens = math.ceil(lines * padded_line / chunk_length) * chunk_length
        return cls(chunk_length, lines, line_length, padded_line, padded_tokens)

    @property
    def padding(self) -> int:
        """Zero tokens added to the ``lines * line_length`` real ones."""
        return self.padded_tokens - self.lines * self.line_length

    @property
    def wraps(self) -> bool:
        """Whether some chunk holds the end of one line and the start of the next without holding either whole
        (the reference allows it; :func:`chunk_lengths_for` never picks it)."""
        length, line = self.chunk_length, self.padded_line
        return length > line and length % line != 0 and length < self.padded_tokens


def stage_grids(patch_in_plane: Sequence[int], n_stages: int) -> list[tuple[int, int]]:
    """Token grid (h, w) of every MorphMLP stage (strides 4, 8, 16, ...); :class:`ChunkSizeError` unless the patch
    is a multiple of the deepest stride."""
    h, w = patch_in_plane
    largest = PATCH_EMBED_STRIDE * 2 ** (n_stages - 1)
    if h % largest or w % largest or h < largest or w < largest:
        raise ChunkSizeError(f"in-plane patch size {h}x{w} is not a positive multiple of {largest}, the encoder's "
                             f"largest stride: choose a patch size that is a multiple of {largest} in both axes")
    return [(h // (PATCH_EMBED_STRIDE * 2 ** i), w // (PATCH_EMBED_STRIDE * 2 ** i)) for i in range(n_stages)]


def aligned_lengths(lines: int, line_length: int) -> list[int]:
    """Chunk lengths that need no padding on this grid: divisors of the line, whole numbers of lines that divide
    the line count, and everything."""
    parts = [d for d in range(1, line_length + 1) if line_length % d == 0]
    whole_lines = [k * line_length for k in range(2, lines + 1) if lines % k == 0]
    return parts + whole_lines


def closest_length(lines: int, line_length: int, fraction: float, cap: int) -> int:
    """The aligned chunk length nearest (by ratio) to ``fraction`` of a line and not above ``cap``; ties go to the
    longer one."""
    target = fraction * line_length
    candidates = [n for n in aligned_lengths(lines, line_length) if n <= cap]  # 1 always fits
    return min(candidates, key=lambda n: (abs(math.log(n / target)), -n))


def chunk_lengths_for(patch_in_plane: Sequence[int], dims: Sequence[int],
                      line_fractions: Sequence[float] | None = None) -> list[list[int]]:
    """``[L_H, L_W]`` per MorphMLP stage for an in-plane patch: the H branch's chunk length (along columns) and
    the W branch's (along rows).

    The deepest stage is global (L = h*w tokens in both branches). Every stage before it takes, per branch, the
    chunk length nearest to ``line_fractions[i]`` of its line (default :data:`REFERENCE_LINE_FRACTIONS`: a
    quarter line, one line, two lines) among those that cut the grid without padding, capped by the next stage's
    length, so that L never decreases with depth. ``dims`` only sets the number of stages: any L fits any channel
    count (see :func:`channels_per_token`).

    Raises :class:`ChunkSizeError` when the patch is not a multiple of the encoder's largest stride.
    """
    fractions = REFERENCE_LINE_FRACTIONS if line_fractions is None else tuple(line_fractions)
    if len(fractions) != len(dims) - 1:
        raise ValueError(f"need one line fraction per stage before the deepest (global) one: {len(fractions)} "
                         f"fractions for {len(dims)} stages")
    grids = stage_grids(patch_in_plane, len(dims))
    h, w = grids[-1]
    lengths = [[h * w, h * w]]
    for (h, w), fraction in zip(reversed(grids[:-1]), reversed(fractions)):
        cap_h, cap_w = lengths[0]
        lengths.insert(0, [closest_length(w, h, fraction, cap_h), closest_length(h, w, fraction, cap_w)])
    return lengths
