"""How deep the inference patch of a slab model is, for stock ``nnUNetv2_predict``.

``nnunet25d predict`` (:class:`~nnunet_25d.inference.slab_predictor.nnUNetSlabPredictor`) ignores this depth: it
tiles in-plane only and gives every slice its true slab at any depth. Stock ``nnUNetv2_predict`` cuts a volume into
tiles of the saved patch size and averages overlapping tiles with a Gaussian (sigma = 1/8 of the tile). A tile that
starts inside the volume cuts the slabs of its first and last k slices, and where two tiles overlap almost entirely
both hold those slices near their low-weight ends: up to half of such a slice's prediction comes from the cut slab,
however deep the tile (:func:`cut_slab_weight_fraction` measures it). So the plans hold a patch deeper than the
volumes the dataset has (:func:`inference_depth`): a volume up to half that depth is one tile along the slab axis,
zero-padded only beyond its ends, and inside the tile's central half, where nnU-Net's float16 weights keep their
precision. Past that :class:`~nnunet_25d.architectures.slab_network.SlabNetwork` warns and names
``nnunet25d predict``. What the depth costs stock inference is memory (4-5 tensors of the tile's logits) and
start-up (SciPy's Gaussian of the whole tile).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window

from nnunet_25d.planning.self_configuration import read_fingerprint

DEPTH_MARGIN = 2.0
ROBUST_PERCENTILE = 95  # one very deep training case must not make every prediction pay for its tile


def inference_depth(median_depth: float, robust_depth: float | None = None) -> int:
    """Patch depth along the slab axis: twice the dataset's volumes (the larger of the median and
    :func:`robust_volume_depth`), so that they sit in the tile's central half (:func:`stock_exact_depth`)."""
    return max(1, math.ceil(DEPTH_MARGIN * max(median_depth, robust_depth or 0)))


def stock_exact_depth(patch_depth: int) -> int:
    """The deepest volume stock ``nnUNetv2_predict`` predicts from true slabs in the tile's central half."""
    return max(1, int(patch_depth / DEPTH_MARGIN))


def stock_exact_slices(patch_depth: int) -> tuple[int, int]:
    """Slices ``[start, stop)`` of a tile that a volume of up to :func:`stock_exact_depth` slices can occupy
    (nnU-Net's ``pad_nd_image`` puts a thinner volume at ``(patch_depth - depth) // 2``)."""
    exact = stock_exact_depth(patch_depth)
    start = (patch_depth - exact) // 2
    return start, start + exact


def cut_slab_weight_fraction(patch_depth: int, slab_size: int, volume_depth: int, step_size: float = 0.5
                             ) -> np.ndarray:
    """Per slice of a volume: the share of its sliding-window weight that comes from tiles cutting its slab.

    0 everywhere when the volume fits one tile (``volume_depth <= patch_depth``): nnU-Net pads it to the patch.
    """
    depth = max(volume_depth, patch_depth)
    weights = compute_gaussian((patch_depth,), 1. / 8, 10, torch.float32, torch.device("cpu")).numpy()
    k = slab_size // 2
    total, cut = np.zeros(depth), np.zeros(depth)
    for start in compute_steps_for_sliding_window((depth,), (patch_depth,), step_size)[0]:
        total[start:start + patch_depth] += weights
        if start > 0:
            cut[start:start + k] += weights[:k]
        if start + patch_depth < depth:
            cut[start + patch_depth - k:start + patch_depth] += weights[patch_depth - k:]
    return cut / total


def volume_extents(preprocessed_dataset_folder: Path, plans: dict, configuration: dict, axis: int) -> list[float]:
    """Extent along ``axis`` (of the transposed, resampled data) of every training volume, from nnU-Net's
    ``dataset_fingerprint.json``; empty when the fingerprint is missing."""
    return fingerprint_extents(read_fingerprint(preprocessed_dataset_folder), plans, configuration, axis)


def fingerprint_extents(fingerprint: dict | None, plans: dict, configuration: dict, axis: int) -> list[float]:
    """:func:`volume_extents` from a fingerprint already read (None: no fingerprint, no extents)."""
    if fingerprint is None:
        return []
    order = plans.get("transpose_forward", [0, 1, 2])
    target = list(configuration["spacing"])
    extents = []
    for shape, spacing in zip(fingerprint["shapes_after_crop"], fingerprint["spacings"]):
        shape = [shape[i] for i in order]
        spacing = [spacing[i] for i in order]
        target_here = target if len(target) == 3 else [spacing[0], *target]  # 2d keeps each case's z spacing
        extents.append(shape[axis] * spacing[axis] / target_here[axis])
    return extents


def deepest_volume(preprocessed_dataset_folder: Path, plans: dict, configuration: dict, axis: int) -> float | None:
    """Largest of :func:`volume_extents`; None without a fingerprint."""
    return max(volume_extents(preprocessed_dataset_folder, plans, configuration, axis), default=None)


def robust_volume_depth(preprocessed_dataset_folder: Path, plans: dict, configuration: dict, axis: int
                        ) -> float | None:
    """The ``ROBUST_PERCENTILE``-th percentile (linear) of :func:`volume_extents`; None without a fingerprint."""
    return robust_depth(read_fingerprint(preprocessed_dataset_folder), plans, configuration, axis)


def robust_depth(fingerprint: dict | None, plans: dict, configuration: dict, axis: int) -> float | None:
    """:func:`robust_volume_depth` from a fingerprint already read."""
    extents = fingerprint_extents(fingerprint, plans, configuration, axis)
    return float(np.percentile(extents, ROBUST_PERCENTILE)) if extents else None
