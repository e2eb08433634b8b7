"""How deep the inference patch of a slab model is.

nnU-Net's predictor cuts a volume into tiles of the saved patch size and averages overlapping tiles with a
Gaussian (sigma = 1/8 of the tile). A tile that starts inside the volume cuts the slabs of its first and last k
slices, and where two tiles overlap almost entirely (a volume a few slices deeper than the tile) both hold those
slices near their low-weight ends: up to half of such a slice's prediction comes from the cut slab, however deep
the tile (:func:`cut_slab_weight_fraction` measures it). So the plugin saves a patch deeper than every volume it
expects, and each volume is one tile along the slab axis: every slab is the volume's own, zero-padded
only beyond the volume's ends. The network skips the padding's work (a slice whose whole slab is zeros is
computed once, see :class:`~nnunet_25d.architectures.slab_network.SlabNetwork`); what the depth costs is memory:
nnU-Net holds the padded tile, its Gaussian and the logits of ``depth`` slices of the in-plane patch.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window

MIN_INFERENCE_DEPTH = 512  # slices
DEPTH_MARGIN = 2.0


def inference_depth(median_depth: float, max_depth: float | None = None) -> int:
    """Patch depth along the slab axis: twice the deepest volume (known or median), at least ``MIN_INFERENCE_DEPTH``.

    Twice, because nnU-Net accumulates the Gaussian-weighted logits in float16: a volume as deep as the patch
    would have its end slices at exp(-8) of the centre weight, where float16 keeps a few significant bits (errors
    of several % of the logit range, worst at in-plane corners). Within the central half the weight stays above
    exp(-2) and the error below 1 % of the logit range (nnU-Net's own 2d has ~0.3 % at its tile corners).
    """
    deepest = max(median_depth, max_depth or 0)
    return max(MIN_INFERENCE_DEPTH, math.ceil(DEPTH_MARGIN * deepest))


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


def deepest_volume(preprocessed_dataset_folder: Path, plans: dict, configuration: dict, axis: int) -> float | None:
    """Largest extent along ``axis`` (of the transposed, resampled data) of the dataset's training volumes, from
    nnU-Net's ``dataset_fingerprint.json``; None when the fingerprint is missing."""
    fingerprint_file = Path(preprocessed_dataset_folder) / "dataset_fingerprint.json"
    if not fingerprint_file.is_file():
        return None
    fingerprint = json.loads(fingerprint_file.read_text())
    order = plans.get("transpose_forward", [0, 1, 2])
    target = list(configuration["spacing"])
    extents = []
    for shape, spacing in zip(fingerprint["shapes_after_crop"], fingerprint["spacings"]):
        shape = [shape[i] for i in order]
        spacing = [spacing[i] for i in order]
        target_here = target if len(target) == 3 else [spacing[0], *target]  # 2d keeps each case's z spacing
        extents.append(shape[axis] * spacing[axis] / target_here[axis])
    return max(extents, default=None)
