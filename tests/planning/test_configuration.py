import copy

import pytest

from nnunet_25d.planning.configuration import (
    SLAB_KEY,
    ConfigurationError,
    TrainingSetup,
    check_source,
    dataset_id,
    derive_thin_slab_plans,
    preprocess_command,
    resolved_source,
    slab_patches,
    slices_per_step,
    store_derived,
    thin_slab_source,
    training_patch_size,
    two_d_op,
    with_data_of,
    with_slice_axis,
)
from nnunet_25d.trainers.slab_trainer import derive_slab_plans
from nnunet_25d.planning.inference_depth import cut_slab_weight_fraction, inference_depth
from nnunet_25d.geometry.slab import SlabBatch, SlabSizeError, slab_batch


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
    ((24, 3, 40, 1), (3, 8, 10)),  # 3 x 8 forces exactly a third: deeper than 8 x 3; 4 x 6 forces 1 of 4
]


@pytest.mark.parametrize("arguments, expected", BATCH_TABLE)
def test_training_batch_table(arguments, expected):
    batch_2d, slab, median_depth, gpus = arguments
    batch = slab_batch(batch_2d, slab, median_depth, TrainingSetup(gpus=gpus).min_patches)
    assert (batch.patches, batch.supervised_slices, batch.patch_depth) == expected
    assert batch.slices_per_step <= batch_2d, "never more 2D passes than nnU-Net's 2d step"


def test_without_a_minimum_of_patches_the_rule_alone_decides():
    """7 slices as 7 x 1 force 2 of 7 (under a third), as 1 x 7 none: the tie goes to the deeper patch."""
    batch = slab_batch(7, 3, 40, min_patches=1)
    assert (batch.patches, batch.supervised_slices) == (1, 7)


@pytest.mark.parametrize("batch_2d", [3, 6, 12, 24, 40, 50])
def test_training_batch_forces_a_third_of_the_slices_to_foreground_like_2d(batch_2d):
    batch = slab_batch(batch_2d, 3, 100)
    assert batch.forced_foreground_fraction >= 1 / 3 and batch.slices_per_step == batch_2d


@pytest.mark.parametrize("slab_size", [3, 5, 7])
@pytest.mark.parametrize("volume_depth", [1, 2, 7, 40, 199, 256, 512])
def test_volumes_up_to_the_inference_patch_are_one_tile(slab_size, volume_depth):
    """nnU-Net's own tiling (steps and Gaussian) of the slice axis at the default tile_step_size of 0.5."""
    depth = inference_depth(median_depth=256)
    assert depth == 512
    assert not cut_slab_weight_fraction(depth, slab_size, volume_depth).any()


def test_a_deeper_inference_patch_alone_would_not_help():
    """Why the patch must hold the whole volume: one slice more, and two tiles overlap almost entirely; the second
    cuts slice 1's slab where both tiles weigh little, so that slab carries a share of the prediction that grows
    with the patch depth."""
    shares = [cut_slab_weight_fraction(depth, 3, depth + 1).max() for depth in (8, 32, 128, 256)]
    assert shares == sorted(shares) and shares[0] > 0.05 and shares[-1] > 0.4


def test_inference_depth_follows_deep_datasets():
    assert inference_depth(median_depth=300) == 600
    assert inference_depth(median_depth=100, robust_depth=300.2) == 601


def test_derived_configuration_reuses_the_2d_plan(nnunet, tiny_dataset):
    plans = nnunet.plans(tiny_dataset)
    source = plans["configurations"]["2d"]
    derived = derive_slab_plans(plans, "2d", 3)["configurations"]["2d"]
    assert derived["data_identifier"] == source["data_identifier"]
    assert derived["spacing"] == source["spacing"], "2d keeps each case's own slice spacing"
    batch = slab_batch(source["batch_size"], 3, plans["original_median_shape_after_transp"][0])
    median_depth = plans["original_median_shape_after_transp"][0]
    assert derived["patch_size"] == [inference_depth(median_depth), *source["patch_size"]], "stock: whole volumes"
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


# --- the derivation steps on plans written by hand (fast: no nnU-Net command) ---

def _configuration(name: str, spacing: list[float], patch: list[int], median: list[float], kernels: list,
                   strides: list, batch_size: int) -> dict:
    dim = len(patch)
    return {
        "data_identifier": f"nnUNetPlans_{name}", "batch_size": batch_size, "patch_size": patch,
        "median_image_size_in_voxels": median, "spacing": spacing, "normalization_schemes": ["ZScoreNormalization"],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": {"order": 3, "is_seg": False},
        "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_seg_kwargs": {"order": 1, "is_seg": True},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"order": 1, "is_seg": False},
        "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                         "arch_kwargs": {"n_stages": 2, "features_per_stage": [8, 16],
                                         "conv_op": f"torch.nn.modules.conv.Conv{dim}d", "kernel_sizes": kernels,
                                         "strides": strides},
                         "_kw_requires_import": ["conv_op"]},
    }


def planned() -> dict:
    """Plans as nnU-Net writes them (trimmed) for 4 x 0.8 x 0.8 mm volumes of about 10 x 32 x 40 voxels; 3d_fullres
    resamples z to 2 mm (20 slices)."""
    return {
        "dataset_name": "Dataset042_Toy", "plans_name": "nnUNetPlans",
        "original_median_shape_after_transp": [10, 32, 40], "transpose_forward": [0, 1, 2],
        "configurations": {
            "2d": _configuration("2d", [0.8, 0.8], [32, 40], [32.0, 40.0], [[3, 3], [3, 3]], [[1, 1], [2, 2]], 12),
            "3d_fullres": _configuration("3d_fullres", [2.0, 0.8, 0.8], [20, 32, 40], [20.0, 32.0, 40.0],
                                         [[1, 3, 3], [3, 3, 3]], [[1, 1, 1], [1, 2, 2]], 2),
        },
    }


def test_dataset_id_and_the_commands_that_preprocess_a_configuration():
    assert [dataset_id({"dataset_name": name}) for name in ("Dataset042_Toy", "Dataset7", "DatasetX_Toy", "Toy")] \
        == ["42", "7", "DatasetX_Toy", "Toy"]
    assert dataset_id({}) == "<DATASET>"
    plans = planned()
    assert preprocess_command(plans, "2d") == "nnUNetv2_plan_and_preprocess -d 42 -c 2d"
    assert preprocess_command({**plans, "plans_name": "nnUNetResEncUNetMPlans"}, "3d_fullres") == \
        "nnUNetv2_preprocess -d 42 -plans_name nnUNetResEncUNetMPlans -c 3d_fullres"
    assert preprocess_command({}, "2d") == "nnUNetv2_plan_and_preprocess -d <DATASET> -c 2d"


def test_missing_configuration_errors_in_full():
    plans = planned()
    with pytest.raises(ConfigurationError) as error:
        check_source(plans, "2d_big")
    assert str(error.value) == (
        "plans 'nnUNetPlans' of Dataset042_Toy have no configuration '2d_big' (available: 2d, 3d_fullres). Plan it "
        "with `nnUNetv2_plan_and_preprocess -d 42 -c 2d_big` (the slab trainers build on `2d`).")
    with pytest.raises(ConfigurationError) as error:
        check_source({"dataset_name": "Dataset042_Toy", "plans_name": "MyPlans"}, "2d")
    assert str(error.value) == (
        "plans 'MyPlans' of Dataset042_Toy have no configuration '2d' (available: none). Plan it with the planner "
        "that wrote them (`nnUNetv2_plan_experiment -d 42 -pl <PLANNER> -overwrite_plans_name MyPlans`), then "
        "`nnUNetv2_preprocess -d 42 -plans_name MyPlans -c 2d` (the slab trainers build on `2d`).")
    with pytest.raises(ConfigurationError) as error:
        check_source({"configurations": {}}, "2d")
    assert str(error.value) == ("plans 'nnUNetPlans' of ? have no configuration '2d' (available: none). Plan it with "
                                "`nnUNetv2_plan_and_preprocess -d <DATASET> -c 2d` (the slab trainers build on `2d`).")


def test_single_slice_datasets_are_refused_in_full():
    check_source(planned(), "2d")
    check_source({**planned(), "original_median_shape_after_transp": [2, 32, 40]}, "2d")
    unknown_shape = planned()
    del unknown_shape["original_median_shape_after_transp"]
    check_source(unknown_shape, "2d")
    with pytest.raises(ConfigurationError) as error:
        check_source({**planned(), "original_median_shape_after_transp": [1, 32, 40]}, "2d")
    assert str(error.value) == (
        "Dataset042_Toy is a 2D dataset (median shape [1, 32, 40]): there are no neighbouring slices for a 2.5D "
        "model. Train nnU-Net's own 2d configuration (`nnUNetv2_train 42 2d <FOLD>` with the default "
        "nnUNetTrainer) instead.")
    with pytest.raises(ConfigurationError) as error:
        check_source({"configurations": {"2d": {}}, "original_median_shape_after_transp": [1, 32, 40]}, "2d")
    assert str(error.value).startswith("this dataset is a 2D dataset (median shape [1, 32, 40]): ")


def test_slice_axis_added_to_2d_kernels_only():
    kernels = [[3, 3], [1, 3, 3], (3, 3, 3)]
    assert with_slice_axis(kernels) == [[1, 3, 3], [1, 3, 3], [3, 3, 3]]
    assert kernels == [[3, 3], [1, 3, 3], (3, 3, 3)], "the plans' own lists stay as they are"


def test_resolved_source_copies_resolves_inheritance_and_recognises_its_own_derivation():
    plans = planned()
    plans["configurations"]["2d_small"] = {"inherits_from": "2d", "batch_size": 4}
    derived, source = resolved_source(plans, "2d_small", {"slab_size": 3})
    assert "inherits_from" not in source and source["batch_size"] == 4 and source["patch_size"] == [32, 40]
    derived["configurations"]["2d"]["patch_size"].append(1)
    source["spacing"].append(1)
    assert plans == {**planned(), "configurations": {**planned()["configurations"],
                                                      "2d_small": {"inherits_from": "2d", "batch_size": 4}}}
    plans["configurations"]["2d"][SLAB_KEY] = {"slab_size": 3, "network": "N", "training_patch_size": [6, 32, 40]}
    assert resolved_source(plans, "2d", {"slab_size": 3, "network": "N"}) == (plans, None)
    with pytest.raises(ConfigurationError) as error:
        resolved_source(plans, "2d", {"slab_size": 5, "network": "N"})
    assert str(error.value) == (
        f"configuration '2d' was already derived for {plans['configurations']['2d'][SLAB_KEY]}, not "
        "{'slab_size': 5, 'network': 'N'}: train from the plans in nnUNet_preprocessed, not from a model "
        "folder's plans.json")


@pytest.mark.parametrize("axis", [0, 2])
def test_slab_patches_by_hand(axis):
    source = {"patch_size": [1, 32, 40], "batch_size": 12, SLAB_KEY: {"slab_size": 3}}
    slab_patches(source, SlabBatch(patches=3, supervised_slices=4, slab_size=5), axis, 600)
    training, inference = [1, 32, 40], [1, 32, 40]
    training[axis], inference[axis] = 8, 600
    assert source == {"patch_size": inference, "batch_size": 3,
                      SLAB_KEY: {"slab_size": 3, "training_patch_size": training, "slab_axis": axis,
                                 "supervised_slices": 4}}
    assert training_patch_size(source) == training and slices_per_step(source) == 12


def test_2d_data_of_a_3d_configuration():
    plans = planned()
    source = copy.deepcopy(plans["configurations"]["2d"])
    with_data_of(plans, source, "3d_fullres")
    full = plans["configurations"]["3d_fullres"]
    assert source["data_identifier"] == "nnUNetPlans_3d_fullres" and source["spacing"] == [2.0, 0.8, 0.8]
    assert all(source[key] == full[key] for key in ("median_image_size_in_voxels", "resampling_fn_data_kwargs",
                                                    "resampling_fn_seg", "resampling_fn_probabilities_kwargs"))
    assert source["patch_size"] == [32, 40] and source["batch_size"] == 12, "the 2d plan's own training choices"
    with pytest.raises(ConfigurationError) as error:
        with_data_of(plans, copy.deepcopy(plans["configurations"]["2d"]), "2d")
    assert str(error.value) == ("'2d' is not a 3D configuration: z-resampled slab data come from a 3D one such as "
                                "3d_fullres")
    plans["configurations"]["3d_fullres"]["spacing"] = [2.0, 0.5, 0.5]
    with pytest.raises(ConfigurationError) as error:
        with_data_of(plans, copy.deepcopy(plans["configurations"]["2d"]), "3d_fullres")
    assert str(error.value) == ("'3d_fullres' resamples in-plane to [0.5, 0.5], the 2d plan to [0.8, 0.8]: the 2d "
                                "network would see another in-plane grid")


def _no_architecture_change(source: dict) -> None:
    source["architecture"]["network_class_name"] = "built"


@pytest.mark.parametrize("data_from, gpus, max_depth, per_patch, batch, depth", [
    (None, 1, None, None, (3, 4, 6), 20),  # 12 slices as 3 x 4; depth bound: 10 slices (the plans' median)
    (None, 4, 300.2, None, (6, 2, 4), 601),  # one patch per GPU at least; twice the deepest volume
    ("3d_fullres", 1, None, None, (3, 4, 6), 40),  # 3d_fullres median: 20 slices
    (None, 1, None, 1, (12, 1, 3), 20),  # per-slice batches: 12 one-slice patches, as many draws as 2d's
    (None, 1, None, 2, (6, 2, 4), 20),
])
def test_thin_slab_plans_by_hand(data_from, gpus, max_depth, per_patch, batch, depth):
    marker = {"slab_size": 3, **({"data_from": data_from} if data_from else {})}
    plans = planned()
    setup = TrainingSetup(max_depth, gpus, per_patch)
    derived = derive_thin_slab_plans(plans, "2d", 3, marker, setup, _no_architecture_change)
    result = derived["configurations"]["2d"]
    patches, supervised, patch_depth = batch
    assert result["patch_size"] == [depth, 32, 40] and result["batch_size"] == patches
    assert result[SLAB_KEY] == {**marker, "supervised_per_patch": per_patch,
                                "training_patch_size": [patch_depth, 32, 40], "slab_axis": 0,
                                "supervised_slices": supervised}
    assert result["architecture"]["network_class_name"] == "built"
    data = plans["configurations"][data_from or "2d"]
    assert result["spacing"] == data["spacing"] and result["data_identifier"] == data["data_identifier"]
    assert plans == planned(), "the caller's plans stay untouched"
    assert derive_thin_slab_plans(derived, "2d", 3, marker, TrainingSetup(supervised_per_patch=per_patch),
                                  _no_architecture_change) == derived
    other_design = TrainingSetup(supervised_per_patch=2 if per_patch is None else None)
    with pytest.raises(ConfigurationError, match="already derived"):
        derive_thin_slab_plans(derived, "2d", 3, marker, other_design, _no_architecture_change)


def test_depth_bound_comes_from_the_data_the_slabs_are_cut_from():
    """Patches are at most as deep as the median volume of the data they are cut from: the 2d data's 10 slices, or
    3d_fullres's (here resampled to 3 slices of 13 mm)."""
    plans = planned()
    plans["configurations"]["3d_fullres"]["median_image_size_in_voxels"] = [3.0, 32.0, 40.0]
    on_2d = thin_slab_source(plans, "2d", 3, {"slab_size": 3})[1]
    on_3d = thin_slab_source(plans, "2d", 3, {"slab_size": 3, "data_from": "3d_fullres"})[1]
    assert (on_2d["batch_size"], on_2d[SLAB_KEY]["supervised_slices"]) == (3, 4)
    assert (on_3d["batch_size"], on_3d[SLAB_KEY]["supervised_slices"]) == (6, 2)
    del plans["original_median_shape_after_transp"]
    unknown = thin_slab_source(plans, "2d", 3, {"slab_size": 3})[1]
    assert (unknown["batch_size"], unknown[SLAB_KEY]["supervised_slices"]) == (6, 2), \
        "without a median shape, at most a slab's depth (3 slices) per patch"


def test_3d_source_configuration_is_refused_in_full():
    with pytest.raises(ConfigurationError) as error:
        thin_slab_source(planned(), "3d_fullres", 3, {"slab_size": 3})
    assert str(error.value) == (
        "configuration '3d_fullres' has a 3D patch [20, 32, 40]; 2.5D trainers derive their slab configuration "
        "from a 2d configuration: use `2d` as CONFIGURATION (e.g. `nnUNetv2_train 42 2d <FOLD> -tr "
        "nnUNetTrainer25D`)")


def test_store_derived_marks_the_configuration():
    derived = planned()
    source = {"batch_size": 2}
    assert store_derived(derived, "3d_fullres", source, {"variant": "aniso"}) is derived
    assert derived["configurations"]["3d_fullres"] == {"batch_size": 2, SLAB_KEY: {"variant": "aniso"}}
    source = {SLAB_KEY: {"slab_axis": 1}}
    store_derived(derived, "2d", source, {"variant": "view"})
    assert derived["configurations"]["2d"][SLAB_KEY] == {"variant": "view", "slab_axis": 1}


def test_two_d_op_changes_only_the_class_name():
    assert two_d_op("torch.nn.modules.conv.Conv3d") == "torch.nn.modules.conv.Conv2d"
    assert two_d_op("torch.nn.modules.instancenorm.InstanceNorm3d") == "torch.nn.modules.instancenorm.InstanceNorm2d"
    assert two_d_op("my_ops3d.layers.Dropout3D") == "my_ops3d.layers.Dropout2D"
    assert two_d_op("BatchNorm3d") == "BatchNorm2d" and two_d_op("BatchNorm3D") == "BatchNorm2D"
    assert two_d_op(None) is None


@pytest.mark.parametrize("arguments, expected", [
    ((40, 3, 100, 3, 1), (40, 1)),  # the 2d batch as one-slice patches
    ((40, 3, 100, 3, 2), (20, 2)),
    ((40, 3, 100, 3, 3), (13, 3)),  # 39 slices: never more than the 2d batch
    ((40, 3, 4, 3, 8), (10, 4)),  # no deeper than the median volume
    ((6, 3, 100, 3, 4), (3, 2)),  # at least 3 patches where the 2d batch allows
    ((2, 3, 100, 3, 2), (2, 1)),  # a 2d batch under the minimum: one slice per patch
])
def test_per_slice_batch_table(arguments, expected):
    batch_2d, slab, median_depth, min_patches, per_patch = arguments
    batch = slab_batch(batch_2d, slab, median_depth, min_patches, per_patch)
    assert (batch.patches, batch.supervised_slices) == expected
    assert isinstance(batch.patches, int) and batch.slices_per_step <= batch_2d
