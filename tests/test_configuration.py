import copy

import pytest
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

from nnunet_25d.configuration import ConfigurationError, derive_slab_plans, min_patch_depth, slices_per_patch
from nnunet_25d.slab import SlabSizeError


@pytest.mark.parametrize(
    "batch_2d, slab, median_depth, expected",
    [
        (10, 3, 20, (5, 2)),  # two patches of 5 slices = the 2d batch of 10 slices
        (12, 3, 100, (6, 2)),
        (50, 5, 20, (20, 2)),  # depth capped at the median number of slices
        (12, 7, 4, (12, 1)),  # never thinner than 4k: every slice gets a tile with its full slab
        (50, 7, 100, (25, 2)),
        (2, 3, 30, (4, 1)),
    ],
)
def test_patch_depth_and_batch_keep_the_2d_slices_per_step(batch_2d, slab, median_depth, expected):
    assert slices_per_patch(batch_2d, slab, median_depth) == expected


@pytest.mark.parametrize("slab_size", [3, 5, 7, 9])
@pytest.mark.parametrize("volume_depth", range(1, 40))
def test_sliding_window_gives_every_slice_its_full_slab(slab_size, volume_depth):
    """Simulates nnU-Net's own tiling of the slice axis at the default tile_step_size of 0.5."""
    k = slab_size // 2
    depth = min_patch_depth(slab_size)
    padded = max(volume_depth, depth)
    (starts,) = compute_steps_for_sliding_window((padded,), (depth,), 0.5)
    for z in range(padded):
        assert any(start + k <= z < start + depth - k or (z < k and start == 0)
                   or (z >= padded - k and start + depth == padded) for start in starts), f"slice {z}"


def test_derived_configuration_reuses_the_2d_plan(nnunet, tiny_dataset):
    plans = nnunet.plans(tiny_dataset)
    source = plans["configurations"]["2d"]
    derived = derive_slab_plans(plans, "2d", 3)["configurations"]["2d"]
    assert derived["data_identifier"] == source["data_identifier"]
    assert derived["spacing"] == source["spacing"], "2d keeps each case's own slice spacing"
    assert derived["patch_size"][1:] == source["patch_size"] and derived["patch_size"][0] >= min_patch_depth(3)
    slices_per_step = derived["patch_size"][0] * derived["batch_size"]
    assert slices_per_step == pytest.approx(source["batch_size"], abs=derived["patch_size"][0])
    kwargs = derived["architecture"]["arch_kwargs"]
    assert kwargs["slab_size"] == 3 and all(s[0] == 1 for s in kwargs["strides"])
    assert derived["architecture"]["network_class_name"].endswith("SlabNetwork")
    assert plans["configurations"]["2d"] == source, "the caller's plans stay untouched"


def test_derivation_is_idempotent_and_refuses_a_different_slab(nnunet, tiny_dataset):
    once = derive_slab_plans(nnunet.plans(tiny_dataset), "2d", 3)
    assert derive_slab_plans(once, "2d", 3) == once
    with pytest.raises(ConfigurationError, match="already derived"):
        derive_slab_plans(once, "2d", 5)


@pytest.mark.parametrize("slab_size", [0, -3, 4])
def test_bad_slab_size_stops_the_derivation(nnunet, tiny_dataset, slab_size):
    with pytest.raises(SlabSizeError, match="positive odd number"):
        derive_slab_plans(nnunet.plans(tiny_dataset), "2d", slab_size)


def test_missing_2d_configuration_names_the_fix(nnunet, tiny_dataset):
    plans = copy.deepcopy(nnunet.plans(tiny_dataset))
    del plans["configurations"]["2d"]
    with pytest.raises(ConfigurationError, match=r"nnUNetv2_plan_and_preprocess -d <DATASET> -c 2d"):
        derive_slab_plans(plans, "2d", 3)


def test_3d_configuration_is_refused(nnunet, tiny_dataset):
    plans = copy.deepcopy(nnunet.plans(tiny_dataset))
    plans["configurations"]["3d_fullres"] = copy.deepcopy(plans["configurations"]["2d"])
    plans["configurations"]["3d_fullres"]["patch_size"] = [8, 32, 32]
    with pytest.raises(ConfigurationError, match="use `2d` as CONFIGURATION"):
        derive_slab_plans(plans, "3d_fullres", 3)


def test_2d_dataset_is_refused(nnunet, tiny_dataset):
    plans = copy.deepcopy(nnunet.plans(tiny_dataset))
    plans["original_median_shape_after_transp"] = [1, 32, 32]
    with pytest.raises(ConfigurationError, match="2D dataset"):
        derive_slab_plans(plans, "2d", 3)


def test_inherited_configuration_is_resolved(nnunet, tiny_dataset):
    plans = copy.deepcopy(nnunet.plans(tiny_dataset))
    plans["configurations"]["2d_small"] = {"inherits_from": "2d", "batch_size": 12}
    derived = derive_slab_plans(plans, "2d_small", 3)["configurations"]["2d_small"]
    assert "inherits_from" not in derived and derived["batch_size"] == 2 and derived["patch_size"][0] == 6
