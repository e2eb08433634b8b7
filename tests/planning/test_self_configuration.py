"""nnUNetTrainer25D's self-configuration (slab size and data from nnU-Net's fingerprint) on hand-made fingerprints,
and which trainers configure themselves."""
from __future__ import annotations

import pytest

from nnunet_25d.planning.self_configuration import (
    CONTEXT_MM,
    MIXED_THICKNESS_RATIO,
    choose_slab,
    slab_size_for,
    thickness_ratio,
)
from nnunet_25d.trainers.registry import TRAINERS


def plans_for(median_spacing: list[float], fullres_z: float | None = None, in_plane: float | None = None,
              transpose: tuple[int, int, int] = (0, 1, 2)) -> dict:
    """Plans as nnU-Net writes them (transposed medians; 2d and 3d_fullres spacings)."""
    in_plane = in_plane or median_spacing[1]
    configurations = {"2d": {"spacing": [in_plane, in_plane]}}
    if fullres_z is not None:
        configurations["3d_fullres"] = {"spacing": [fullres_z, in_plane, in_plane]}
    return {"original_median_spacing_after_transp": median_spacing, "transpose_forward": list(transpose),
            "configurations": configurations}


def fingerprint_for(slice_spacings: list[float], in_plane: float = 0.8, slice_axis: int = 0) -> dict:
    spacings = []
    for z in slice_spacings:
        spacing = [in_plane] * 3
        spacing[slice_axis] = z
        spacings.append(spacing)
    return {"spacings": spacings}


@pytest.mark.parametrize("spacing, slab", [(0.5, 7), (1.0, 7), (1.5, 7), (2.0, 5), (2.5, 5), (3.0, 3), (4.0, 3),
                                           (5.0, 3), (10.0, 3)])
def test_slab_size_covers_the_context_in_millimetres_within_bounds(spacing, slab):
    assert slab_size_for(spacing) == slab
    assert slab % 2 == 1


@pytest.mark.parametrize("spacing", [1.2, 1.7, 2.2, 3.1, 4.4, 7.0])
def test_slab_half_width_is_the_nearest_to_the_context_where_the_bounds_allow(spacing):
    half = slab_size_for(spacing) // 2
    assert abs(half * spacing - CONTEXT_MM) <= spacing / 2


def test_uniform_1mm_slices_get_seven_slices_on_the_2d_data():
    choice = choose_slab(plans_for([1.0, 0.3, 0.3], 1.0), "2d", fingerprint_for([1.0] * 10, 0.3))
    assert (choice.slab_size, choice.data_configuration, choice.thickness_ratio) == (7, None, 1.0)
    assert not choice.near_isotropic


def test_uniform_5mm_slices_get_three_slices_on_the_2d_data():
    choice = choose_slab(plans_for([5.0, 0.8, 0.8], 5.0), "2d", fingerprint_for([5.0] * 10))
    assert (choice.slab_size, choice.data_configuration) == (3, None)
    assert "agree" in choice.data_reason


def test_mixed_2_and_5mm_slices_train_on_resampled_data_with_the_slab_of_its_spacing():
    plans = plans_for([3.5, 0.8, 0.8], fullres_z=3.5)
    choice = choose_slab(plans, "2d", fingerprint_for([2.0, 5.0] * 5))
    assert choice.data_configuration == "3d_fullres"
    assert choice.thickness_ratio == pytest.approx(2.5)
    assert (choice.slice_spacing_mm, choice.slab_size) == (3.5, 3)
    fine = choose_slab(plans_for([1.5, 0.8, 0.8], fullres_z=1.5), "2d", fingerprint_for([1.0, 2.0] * 5))
    assert (fine.data_configuration, fine.slab_size) == ("3d_fullres", 7), "the slab follows the resampled spacing"


def test_the_thickness_ratio_threshold_is_inclusive_on_the_2d_side():
    plans = plans_for([2.0, 0.8, 0.8], fullres_z=2.0)
    at = choose_slab(plans, "2d", fingerprint_for([2.0, 2.0 * MIXED_THICKNESS_RATIO] * 5))
    above = choose_slab(plans, "2d", fingerprint_for([2.0, 2.0 * MIXED_THICKNESS_RATIO * 1.01] * 5))
    assert (at.data_configuration, above.data_configuration) == (None, "3d_fullres")


def test_a_few_odd_cases_do_not_switch_the_data():
    spacings = [5.0] * 18 + [1.0]  # one thin-slice case in 19: below the 10th percentile
    assert thickness_ratio(spacings) == pytest.approx(1.0)


def test_near_isotropic_data_say_that_25d_is_not_expected_to_help():
    choice = choose_slab(plans_for([1.0, 0.8, 0.8], 1.0), "2d", fingerprint_for([1.0] * 8))
    assert choice.near_isotropic
    assert any("not expected to beat 3d_fullres" in line for line in choice.reasons())
    anisotropic = choose_slab(plans_for([4.0, 0.8, 0.8], 4.0), "2d", fingerprint_for([4.0] * 8))
    assert not anisotropic.near_isotropic and len(anisotropic.reasons()) == 2


def test_the_slice_axis_follows_transpose_forward():
    """nnU-Net's 2d slices its first transposed axis: here the fingerprint's last (original x) axis."""
    plans = plans_for([5.0, 0.8, 0.8], 5.0, transpose=(2, 0, 1))
    choice = choose_slab(plans, "2d", fingerprint_for([2.0, 5.0] * 4, slice_axis=2))
    assert choice.thickness_ratio == pytest.approx(2.5)
    uniform_z_mixed_x = choose_slab(plans, "2d", fingerprint_for([2.0, 5.0] * 4, slice_axis=0))
    assert uniform_z_mixed_x.thickness_ratio == pytest.approx(1.0)


def test_without_a_fingerprint_or_3d_fullres_the_2d_data_stay_and_the_reason_says_why():
    missing = choose_slab(plans_for([4.0, 0.8, 0.8], 4.0), "2d", None)
    assert (missing.data_configuration, missing.thickness_ratio) == (None, None)
    assert "fingerprint" in missing.data_reason
    no_fullres = choose_slab(plans_for([3.5, 0.8, 0.8]), "2d", fingerprint_for([2.0, 5.0] * 5))
    assert no_fullres.data_configuration is None and "no 3d_fullres" in no_fullres.data_reason
    other_grid = plans_for([3.5, 0.8, 0.8], 3.5)
    other_grid["configurations"]["3d_fullres"]["spacing"] = [3.5, 1.0, 1.0]
    assert choose_slab(other_grid, "2d", fingerprint_for([2.0, 5.0] * 5)).data_configuration is None


def test_the_plans_entry_is_json_ready_and_names_the_rule():
    entry = choose_slab(plans_for([3.5, 0.8, 0.8], 3.5), "2d", fingerprint_for([2.0, 5.0] * 5)).as_plans_entry()
    assert entry["slab_size"] == 3 and entry["data_configuration"] == "3d_fullres"
    assert entry["thickness_ratio"] == 2.5 and "1.5" in entry["rule"] and "4 mm" in entry["rule"]


@pytest.mark.parametrize("name, configures_itself", [
    ("nnUNetTrainer25D", True),
    ("nnUNetTrainer25D_10epochs_50iters", True),
    ("nnUNetTrainer25D_BorderLoss", True),
    ("nnUNetTrainer25D_SGD", True),
    ("nnUNetTrainer25D_3slices", False),  # fixed by name: 3 slices on the 2d data
    ("nnUNetTrainer25D_5slices_10epochs_50iters", False),
    ("nnUNetTrainer25DResampled", False),
    ("nnUNetTrainer25D_DeepPatches", False),
    ("nnUNetTrainer25DFusion", False),
    ("nnUNetTrainer25DMorphMLP_N", False),
    ("nnUNetTrainer25DCoronal", False),
])
def test_only_the_default_and_its_schedule_loss_and_optimiser_variants_configure_themselves(name, configures_itself):
    assert TRAINERS[name].self_configuring is configures_itself


def test_per_slice_batches_for_the_slab_trainers_not_the_earlier_design_or_the_views():
    assert TRAINERS["nnUNetTrainer25D"].supervised_per_patch == 1
    assert TRAINERS["nnUNetTrainer25DMorphMLP_N"].supervised_per_patch == 1
    assert TRAINERS["nnUNetTrainer25D_DeepPatches"].supervised_per_patch is None
    assert TRAINERS["nnUNetTrainer25DCoronal"].supervised_per_patch is None, "views split a 2d step's pixels"


def test_the_benchmark_reads_the_choice_from_the_preprocessed_dataset(tmp_path):
    import json

    from nnunet_25d.planning.self_configuration import benchmark_lines, dataset_choice

    assert dataset_choice(tmp_path) is None and benchmark_lines(None) == []
    (tmp_path / "nnUNetPlans.json").write_text(json.dumps(plans_for([1.0, 0.8, 0.8], 1.0)))
    (tmp_path / "dataset_fingerprint.json").write_text(json.dumps(fingerprint_for([1.0, 3.0] * 4)))
    choice = dataset_choice(tmp_path)
    assert (choice.data_configuration, choice.slab_size) == ("3d_fullres", 7)
    lines = benchmark_lines(choice)
    assert lines[0].startswith("nnUNetTrainer25D configures itself here: slab 7 slices")
    assert "3d_fullres is the model to beat" in lines[-1], "near-isotropic: says 2.5D is not expected to help"
    (tmp_path / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"3d_fullres": {}}}))
    assert dataset_choice(tmp_path) is None, "no 2d plan: nothing to configure"


def test_plans_without_nnunets_median_spacing_leave_the_choice_to_the_class():
    assert choose_slab({"configurations": {"2d": {"spacing": [1.0, 1.0]}}}, "2d", fingerprint_for([1.0, 5.0])) is None


def test_a_choice_round_trips_through_the_plans_entry():
    from nnunet_25d.planning.self_configuration import SlabChoice

    choice = choose_slab(plans_for([3.5, 0.8, 0.8], fullres_z=3.5), "2d", fingerprint_for([2.0, 5.0] * 5))
    assert SlabChoice.from_plans_entry(choice.as_plans_entry()) == choice


def test_the_reasons_read_as_written():
    from nnunet_25d.planning.self_configuration import SlabChoice

    choice = SlabChoice(5, None, 2.0, 1.0, 2.5, "the cases' slice spacings agree")
    assert choice.reasons() == [
        "slab 5 slices: 4 mm of context either side at 2 mm slices, bounded 3..7 (sees +-4 mm)",
        "data 2d: the cases' slice spacings agree",
        "slices only 2.5x the in-plane spacing (< 3x, MONAI Auto3DSeg's threshold for a 2D model): 2.5D is not "
        "expected to beat 3d_fullres here"]
    resampled = SlabChoice(3, "3d_fullres", 3.5, 2.5, 4.4, "mixed")
    assert resampled.reasons()[1] == "data 3d_fullres: mixed"
    assert "(sees +-3.5 mm)" in resampled.reasons()[0]


def test_the_benchmark_sentences_read_as_written():
    from nnunet_25d.planning.self_configuration import SlabChoice, benchmark_lines

    near = SlabChoice(7, None, 1.0, 1.0, 1.25, "agree")
    assert benchmark_lines(near) == [
        "nnUNetTrainer25D configures itself here: " + "; ".join(near.reasons()),
        "On near-isotropic data nnU-Net's 3d_fullres is the model to beat; the 2.5D rows show what slices cost or "
        "gain there."]


def test_the_reasons_for_the_data_read_as_written():
    missing = choose_slab(plans_for([4.0, 0.8, 0.8], 4.0), "2d", None)
    assert missing.data_reason == "no dataset_fingerprint.json to compare the cases' slice spacings"
    mixed = choose_slab(plans_for([3.5, 0.8, 0.8], 3.5), "2d", fingerprint_for([2.0, 5.0] * 5))
    assert mixed.data_reason == ("mixed slice thickness (90th/10th percentile 2.50 > 1.5): slices resampled to "
                                 "3.5 mm so a slab spans the same millimetres in every case")
    other_grid = plans_for([3.5, 0.8, 0.8], 3.5)
    other_grid["configurations"]["3d_fullres"]["spacing"] = [3.5, 1.0, 1.2]
    assert choose_slab(other_grid, "2d", fingerprint_for([2.0, 5.0] * 5)).data_reason == (
        "mixed slice thickness (ratio 2.50) but 3d_fullres resamples in-plane to [1.0, 1.2], the 2d plan to "
        "[0.8, 0.8]")
    no_spacing = plans_for([3.5, 0.8, 0.8], 3.5)
    del no_spacing["configurations"]["2d"]["spacing"]
    assert choose_slab(no_spacing, "2d", fingerprint_for([2.0, 5.0] * 5)).data_configuration is None


def test_anisotropy_uses_the_finest_in_plane_spacing_and_transpose_defaults_to_none():
    plans = plans_for([2.0, 0.5, 1.0], 2.0)
    assert choose_slab(plans, "2d", None).anisotropy == 4.0
    del plans["transpose_forward"]
    from nnunet_25d.planning.self_configuration import case_slice_spacings

    assert case_slice_spacings(fingerprint_for([2.0, 5.0]), plans) == [2.0, 5.0]


def test_the_thickness_ratio_is_the_90th_over_the_10th_percentile():
    assert thickness_ratio([float(n) for n in range(1, 11)]) == pytest.approx(9.1 / 1.9)
    assert thickness_ratio([]) is None


def test_the_plans_entry_rounds_to_four_places_and_keeps_an_unknown_ratio():
    from nnunet_25d.planning.self_configuration import SlabChoice

    entry = SlabChoice(3, None, 1 / 3, None, 10 / 3, "x").as_plans_entry()
    assert (entry["slice_spacing_mm"], entry["thickness_ratio"], entry["anisotropy"]) == (0.3333, None, 3.3333)


def test_a_missing_fingerprint_reads_as_none(tmp_path):
    from nnunet_25d.planning.self_configuration import read_fingerprint

    assert read_fingerprint(None) is None and read_fingerprint(tmp_path) is None


def test_an_unplanned_configuration_leaves_the_error_to_the_derivation():
    """choose_slab runs before the derivation checks the configuration: it must not crash on what that check
    reports with its fix (an unplanned configuration, plans without configurations)."""
    mixed = fingerprint_for([2.0, 5.0] * 5)
    plans = plans_for([3.5, 0.8, 0.8], 3.5)
    assert choose_slab(plans, "2d_custom", mixed).data_configuration is None
    del plans["configurations"]
    assert choose_slab(plans, "2d", mixed).data_configuration is None
