"""How deep a slab model's inference patch is, and what cutting slabs between tiles costs (fast: no nnU-Net run)."""
import json
import math

import numpy as np
import pytest
import torch
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window

from nnunet_25d.planning.inference_depth import (
    cut_slab_weight_fraction,
    deepest_volume,
    inference_depth,
    robust_volume_depth,
    stock_exact_depth,
    stock_exact_slices,
)


def test_cut_share_by_hand():
    """A 5-slice volume in 4-slice tiles, 3-slice slabs: tiles start at 0 and 1. With sigma = 4/8 the Gaussian
    weights of tile positions 0..3 are exp(-8), exp(-2), 1, exp(-2). Slice 1 is the first of tile 1 (its slab cut)
    and the second of tile 0; slice 3 is the last of tile 0 (cut) and the third of tile 1."""
    expected = [0, math.exp(-8) / (math.exp(-8) + math.exp(-2)), 0, math.exp(-2) / (math.exp(-2) + 1), 0]
    assert np.allclose(cut_slab_weight_fraction(4, 3, 5), expected, rtol=1e-5, atol=0)


def reference_cut_share(patch_depth: int, slab_size: int, volume_depth: int, step_size: float) -> np.ndarray:
    """Per slice, over nnU-Net's tiles (its steps and Gaussian): the weight of the tiles that lack a slice of the
    slab that the volume has, over the weight of all tiles holding the slice."""
    weights = compute_gaussian((patch_depth,), 1. / 8, 10, torch.float64, torch.device("cpu")).numpy()
    k = slab_size // 2
    total, cut = np.zeros(volume_depth), np.zeros(volume_depth)
    for start in compute_steps_for_sliding_window((volume_depth,), (patch_depth,), step_size)[0]:
        for z in range(start, start + patch_depth):
            slab = range(max(0, z - k), min(volume_depth, z + k + 1))
            total[z] += weights[z - start]
            cut[z] += weights[z - start] * any(not start <= s < start + patch_depth for s in slab)
    return cut / total


@pytest.mark.parametrize("patch_depth, slab_size, volume_depth, step_size", [
    (4, 5, 7, 0.25),  # tiles one slice apart: slices cut by several tiles
    (8, 5, 13, 0.5), (8, 7, 20, 0.5), (16, 3, 17, 0.5), (6, 3, 6, 0.5), (12, 7, 40, 0.3),
])
def test_cut_share_matches_a_slice_by_slice_count(patch_depth, slab_size, volume_depth, step_size):
    assert np.allclose(cut_slab_weight_fraction(patch_depth, slab_size, volume_depth, step_size),
                       reference_cut_share(patch_depth, slab_size, volume_depth, step_size), rtol=1e-5, atol=1e-9)


def test_inference_depth_by_hand():
    assert inference_depth(10) == 20 and inference_depth(10, 255.5) == 511 and inference_depth(10, 256.2) == 513
    assert inference_depth(300.2) == 601 and inference_depth(300, 100) == 600 and inference_depth(0.2) == 1
    assert inference_depth(10, None) == 20 and inference_depth(0) == 1


@pytest.mark.parametrize("patch_depth", [1, 2, 3, 20, 21, 511, 512])
def test_stock_exact_slices_hold_every_volume_nnunet_pads_into_them(patch_depth):
    """nnU-Net's pad_nd_image puts a volume of d slices at (D - d) // 2; every d up to the exact depth lies inside
    the exact slices, d = exact + 1 does not fit."""
    start, stop = stock_exact_slices(patch_depth)
    exact = stock_exact_depth(patch_depth)
    assert stop - start == exact == max(1, patch_depth // 2)
    for depth in range(1, exact + 1):
        first = (patch_depth - depth) // 2
        assert start <= first and first + depth <= stop


def write_fingerprint(folder, shapes, spacings) -> None:
    (folder / "dataset_fingerprint.json").write_text(json.dumps({"shapes_after_crop": shapes, "spacings": spacings}))


def test_deepest_volume_in_the_configurations_voxels(tmp_path):
    """Fingerprint shapes and spacings are in the raw axis order; plans transpose them (here z last -> first)."""
    write_fingerprint(tmp_path, [[64, 60, 10], [64, 64, 30], [50, 64, 12]], [[0.8, 0.8, 5.0], [0.8, 0.8, 1.5],
                                                                              [0.8, 0.8, 4.0]])
    plans = {"transpose_forward": [2, 0, 1]}
    assert deepest_volume(tmp_path, plans, {"spacing": [2.0, 0.5, 0.5]}, 0) == 25.0  # 10 x 5 / 2 (45 / 2, 48 / 2)
    assert deepest_volume(tmp_path, plans, {"spacing": [0.5, 0.5]}, 0) == 30  # 2d: each case's own z spacing
    assert deepest_volume(tmp_path, plans, {"spacing": [2.0, 0.5, 0.4]}, 2) == 128.0  # 64 x 0.8 / 0.4
    assert deepest_volume(tmp_path, plans, {"spacing": [2.0, 0.4, 0.5]}, 1) == 128.0  # y: 64 x 0.8 / 0.4


def test_robust_depth_is_the_95th_percentile_of_the_extents(tmp_path):
    """20 volumes of 10..29 slices and one of 900: the percentile moves little, the maximum would be 900."""
    depths = list(range(10, 30)) + [900]
    write_fingerprint(tmp_path, [[d, 64, 64] for d in depths], [[2.0, 0.8, 0.8]] * len(depths))
    assert robust_volume_depth(tmp_path, {}, {"spacing": [0.8, 0.8]}, 0) == pytest.approx(29.0)  # np: 28 + 1.0 * 1
    assert deepest_volume(tmp_path, {}, {"spacing": [0.8, 0.8]}, 0) == 900
    assert robust_volume_depth(tmp_path / "missing", {}, {"spacing": [0.8, 0.8]}, 0) is None
    write_fingerprint(tmp_path, [[10, 64, 64], [30, 64, 64]], [[2.0, 0.8, 0.8]] * 2)
    assert robust_volume_depth(tmp_path, {}, {"spacing": [0.8, 0.8]}, 0) == pytest.approx(29.0)  # 10 + 0.95 * 20


def test_deepest_volume_without_transpose_or_fingerprint(tmp_path):
    write_fingerprint(tmp_path, [[10, 64, 60]], [[5.0, 0.8, 0.8]])
    assert deepest_volume(tmp_path, {}, {"spacing": [2.5, 0.8, 0.8]}, 0) == 20.0
    assert deepest_volume(tmp_path, {}, {"spacing": [2.5, 0.4, 0.8]}, 1) == 128.0
    assert deepest_volume(tmp_path / "missing", {}, {"spacing": [2.5, 0.8, 0.8]}, 0) is None
    write_fingerprint(tmp_path, [], [])
    assert deepest_volume(tmp_path, {}, {"spacing": [2.5, 0.8, 0.8]}, 0) is None
