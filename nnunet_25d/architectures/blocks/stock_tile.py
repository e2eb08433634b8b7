"""Guards for a slab network run by stock ``nnUNetv2_predict`` on its deep tile: say when a volume is past the
tile's exact range, and refuse a tile whose logits will not fit in memory, before nnU-Net allocates them; both
name ``nnunet25d predict``, which needs neither (it tiles in-plane, as nnU-Net 2d)."""
from __future__ import annotations

import math
import warnings

import psutil
import torch

from nnunet_25d.planning.inference_depth import stock_exact_depth, stock_exact_slices

# nnU-Net's predictor holds about this many tile-sized float32 logit tensors per tile (network output, mirroring
# sums, its copy in ``cat(...)[order]``, ``prediction * gaussian``); measured in benchmarks/clinical_scale.py
STOCK_TILE_COPIES = 5
USE_INSTEAD = ("predict with `nnunet25d predict` (nnUNetv2_predict's arguments; every slice from its true slab at "
               "any depth, with nnU-Net 2d's memory)")


class StockTileMemoryError(MemoryError):
    """Stock nnU-Net inference of this tile would run out of memory."""


class StockInferenceWarning(UserWarning):
    """Stock nnU-Net inference of a slab model that is not exact for this volume."""


def past_exact_range(slice_has_data: torch.Tensor) -> bool:
    """(B, D) bool per slice of a tile: does data reach outside the tile's central :func:`stock_exact_slices`?"""
    start, stop = stock_exact_slices(slice_has_data.shape[1])
    return bool(slice_has_data[:, :start].any() or slice_has_data[:, stop:].any())


def warn_past_exact_range(patch_depth: int) -> None:
    warnings.warn(
        f"nnunet_25d: this volume is deeper than {stock_exact_depth(patch_depth)} slices along the slab axis, the "
        f"range in which stock nnUNetv2_predict (a tile of {patch_depth} slices) predicts every slice from its "
        f"true slab at full float16 precision; its end slices may come from cut slabs. For exact slabs, "
        f"{USE_INSTEAD}.", StockInferenceWarning, stacklevel=3)


def tile_logit_bytes(num_classes: int, tile_shape: tuple[int, ...]) -> int:
    return STOCK_TILE_COPIES * num_classes * math.prod(int(n) for n in tile_shape) * 4


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def check_tile_fits(num_classes: int, tile_shape: tuple[int, ...], device: torch.device) -> None:
    """Raise :class:`StockTileMemoryError` if the tile's logits will not fit in ``device``'s free memory."""
    needed, free = tile_logit_bytes(num_classes, tile_shape), available_bytes(device)
    if needed > free:
        raise StockTileMemoryError(
            f"nnunet_25d: stock nnUNetv2_predict of this slab model needs about {needed / 2**30:.1f} GiB for one "
            f"tile {list(tile_shape)} x {num_classes} classes, {free / 2**30:.1f} GiB are free on {device}: "
            f"{USE_INSTEAD}.")
