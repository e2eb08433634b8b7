import copy

import pytest

from nnunet_25d.configuration import SLAB_KEY, ConfigurationError, TrainingSetup, training_patch_size
from nnunet_25d.training.slab_trainer import derive_slab_plans
from nnunet_25d.inference_patch import MIN_INFERENCE_DEPTH, cut_slab_weight_fraction, inference_depth
from nnunet_25d.slab import SlabSizeError, slab_batch


# (2d batch, slab, median depth, GPUs) -> (patches, supervised slices per patch, patch depth)
BATCH_TABLE = [
    ((2, 3, 40, 1), (2, 1, 3)),  # a 2d batch of 2: two one-slice patches, one forced to foreground
    ((2, 5, 40, 1), (2, 1, 5)),
    ((2, 7, 40, 1), (2, 1, 7)),
    ((12, 3, 40, 1), (3, 4, 6)),
    ((12, 5, 40, 1), (3, 4, 8)),
    ((12, 7, 40, 1), (3, 4, 10)),
    ((40, 3, 40, 1), (5, 8, 10)),  # 40 slices as 5 x 8: 2 of 5 patches forced (4 x 10 would force 1 of 4)
    ((40, 5, 40, 1), (5, 8, 12)),
    ((40, 7, 40, 1), (5, 8, 14)),
    ((40, 3, 4, 1), (20, 2, 4)),  # no deeper than the median volume (10 x 4 would force 3 of 10)
    ((12, 3, 40, 4), (6, 2, 4)),  # four GPUs: at least one patch each (4 x 3 would force 1 of 4)
    ((12, 3, 40, 8), (12, 1, 3)),
    ((5, 3, 40, 1), (5, 1, 3)),
    ((1, 3, 40, 1), (1, 1, 3)),  # nnU-Net's 2d would not oversample either
]


@pytest.mark.parametrize("arguments, expected", BATCH_TABLE)
def test_training_batch_table(arguments, expected):
    batch_2d, slab, median_depth, gpus = arguments
    batch = slab_batch(batch_2d, slab, median_depth, TrainingSetup(gpus=gpus).min_patches)
    assert (batch.patches, batch.supervised_slices, batch.patch_depth) == expected
    assert batch.slices_per_step <= batch_2d, "never more 2D passes than nnU-Net's 2d step"


@pytest.mark.parametrize("batch_2d", [3, 6, 12, 24, 40, 50])
def test_training_batch_forces_a_third_of_the_slices_to_foreground_like_2d(batch_2d):
    batch = slab_batch(batch_2d, 3, 100)
    assert batch.forced_foreground_fraction >= 1 / 3 and batch.slices_per_step == batch_2d


@pytest.mark.parametrize("slab_size", [3, 5, 7])
@pytest.mark.parametrize("volume_depth", [1, 2, 7, 40, 199, 256, 512])
def test_volumes_up_to_the_inference_patch_are_one_tile(slab_size, volume_depth):
    """nnU-Net's own tiling (steps and Gaussian) of the slice axis at the default tile_step_size of 0.5."""
    depth = inference_depth(median_depth=10)
    assert depth == MIN_INFERENCE_DEPTH
    assert not cut_slab_weight_fraction(depth, slab_size, volume_depth).any()


def test_a_deeper_inference_patch_alone_would_not_help():
    """Why the patch must hold the whole volume: one slice more, and two tiles overlap almost entirely; the second
    cuts slice 1's slab where both tiles weigh little, so that slab carries a share of the prediction that grows
    with the patch depth."""
    shares = [cut_slab_weight_fraction(depth, 3, depth + 1).max() for depth in (8, 32, 128, 256)]
    assert shares == sorted(shares) and shares[0] > 0.05 and shares[-1] > 0.4


def test_inference_depth_follows_deep_datasets():
    assert inference_depth(median_depth=300) == 600
    assert inference_depth(median_depth=100, max_depth=300.2) == 601


def test_derived_configuration_reuses_the_2d_plan(nnunet, tiny_dataset):
    plans = nnunet.plans(tiny_dataset)
    source = plans["configurations"]["2d"]
    derived = derive_slab_plans(plans, "2d", 3)["configurations"]["2d"]
    assert derived["data_identifier"] == source["data_identifier"]
    assert derived["spacing"] == source["spacing"], "2d keeps each case's own slice spacing"
    batch = slab_batch(source["batch_size"], 3, plans["original_median_shape_after_transp"][0])
    assert derived["patch_size"] == [MIN_INFERENCE_DEPTH, *source["patch_size"]], "inference: whole volumes"
    assert training_patch_size(derived) == [batch.patch_depth, *source["patch_size"]]
    assert derived["batch_size"] == batch.patches and derived[SLAB_KEY]["supervised_slices"] == batch.supervised_slices
    kwargs = derived["architecture"]["arch_kwargs"]
    assert kwargs["slices_per_forward"] == batch.slices_per_step
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
    with pytest.raises(ConfigurationError, match=r"`nnUNetv2_plan_and_preprocess -d 971 -c 2d`"):
        derive_slab_plans(plans, "2d", 3)
    plans["plans_name"] = "nnUNetResEncUNetMPlans"
    with pytest.raises(ConfigurationError, match=r"-overwrite_plans_name nnUNetResEncUNetMPlans`\), then "
                                                 r"`nnUNetv2_preprocess -d 971 -plans_name nnUNetResEncUNetMPlans -c 2d`"):
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
    assert "inherits_from" not in derived and derived["batch_size"] == 3
    assert training_patch_size(derived)[0] == 6, "12 slices: 3 patches of 4 supervised slices + 2 context slices"
