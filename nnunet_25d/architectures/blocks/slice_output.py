"""SliceOutput: a 2D network's training output with a slice-level classification beside the segmentation."""
from __future__ import annotations

from typing import NamedTuple

import torch


class SliceOutput(NamedTuple):
    """``segmentation``: nnU-Net's usual output (a list, highest resolution first, with deep supervision; else one
    tensor). ``slice_logits``: one logit per foreground class (or region) and slice, "the slice contains it":
    (N, K') from a 2D network, (B, K', D) once a slab network has put the slices back into their patch."""

    segmentation: list[torch.Tensor] | torch.Tensor
    slice_logits: torch.Tensor


def slice_logits_per_patch(logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(B*D, K') per-slice logits -> (B, K', D), slice z of patch b at [b, :, z]."""
    return logits.reshape(batch_size, -1, logits.shape[1]).transpose(1, 2)
