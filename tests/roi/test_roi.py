"""Mei et al.'s ROI crops: the box by hand, the crop against the source array, the 3 mm grid against a linear ramp,
the raw dataset nnunet25d make-roi-dataset writes (the label-placed oracle here; the image placement in
test_placement.py), its errors, the fusion of the ROI models' cross-validation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_25d.errors import UserError
from nnunet_25d.roi.crop import ROI_SCALES, Box, foreground_box, roi_box, roi_of
from nnunet_25d.roi.dataset import write_roi_dataset
from nnunet_25d.roi.fusion import in_source_grid
from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset


def image_of(array: np.ndarray, spacing_zyx=(4.0, 0.8, 0.8), origin=(1.0, -2.0, 3.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_zyx[::-1])
    image.SetOrigin(origin)
    return image


def test_box_is_the_foreground_grown_by_whole_voxels_and_clipped():
    labels = np.zeros((20, 30, 40), np.uint8)
    labels[5:8, 10:14, 30:38] = 2
    labels[6, 12, 3] = 1
    assert foreground_box(labels) == Box((5, 10, 3), (8, 14, 38))
    # 6 mm at 4 mm slices: 2 slices; 10 mm at 0.8 mm: 13 pixels
    assert roi_box(foreground_box(labels), labels.shape, (4.0, 0.8, 0.8), (6.0, 10.0, 10.0)) == \
        Box((3, 0, 0), (10, 27, 40))
    assert roi_box(None, labels.shape, (4.0, 0.8, 0.8), (6.0, 10.0, 10.0)) == Box((0, 0, 0), (20, 30, 40))
    assert foreground_box(np.zeros((2, 2, 2))) is None


def test_at_the_source_thickness_the_roi_is_the_source_arrays_box():
    rng = np.random.default_rng(0)
    array = rng.random((12, 16, 18)).astype(np.float32)
    labels = (array > 0.7).astype(np.uint8)
    box = Box((2, 3, 4), (9, 11, 15))
    image, roi_labels = roi_of(image_of(array), image_of(labels), box, thickness=4.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), array[box.slices()], atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(roi_labels), labels[box.slices()])
    source = image_of(array)
    assert image.GetOrigin() == pytest.approx(source.TransformIndexToPhysicalPoint([4, 3, 2]))


def test_at_three_mm_the_slices_sample_the_source_linearly_and_cover_the_box():
    ramp = np.broadcast_to(np.arange(12, dtype=np.float32)[:, None, None] * 10, (12, 5, 6)).copy()  # 10 per slice
    box = Box((2, 0, 0), (9, 5, 6))  # 7 slices of 4 mm = 28 mm -> 10 slices of 3 mm (30 mm, centred)
    image, _ = roi_of(image_of(ramp), None, box, thickness=3.0)
    assert image.GetSize() == (6, 5, 10) and image.GetSpacing()[2] == pytest.approx(3.0)
    centre = (2 + 8) / 2  # the box's centre slice in source voxels
    source_positions = centre + (np.arange(10) - 4.5) * 3.0 / 4.0
    np.testing.assert_allclose(sitk.GetArrayFromImage(image)[:, 2, 3], source_positions * 10, atol=1e-4)


def test_make_roi_dataset_writes_every_case_cropped_with_its_box(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    write_dataset(raw, 901, n_train=3, n_test=0, spec=SyntheticSpec(shape=(12, 48, 48), objects_per_class=1), seed=3)
    target = write_roi_dataset("901", 902, "small", raw=raw, from_label=True)
    assert target.name == "Dataset902_Synthetic25DROISmallOracle"
    roi = json.loads((target / "roi.json").read_text())
    assert roi["scale"] == "small" and roi["margin_mm"] == list(ROI_SCALES["small"]) and roi["slice_thickness"] == 3.0
    assert roi["placement"] == "label (oracle)"
    description = json.loads((target / "dataset.json").read_text())
    assert description["numTraining"] == 3
    source = raw / "Dataset901_Synthetic25D"
    for case, box in roi["cases"].items():
        labels = sitk.ReadImage(str(source / "labelsTr" / f"{case}.nii.gz"))
        array = sitk.GetArrayFromImage(labels)
        expected = roi_box(foreground_box(array), array.shape, labels.GetSpacing()[::-1], ROI_SCALES["small"])
        assert Box(tuple(box["start"]), tuple(box["stop"])) == expected
        crop_labels = sitk.ReadImage(str(target / "labelsTr" / f"{case}.nii.gz"))
        crop_image = sitk.ReadImage(str(target / "imagesTr" / f"{case}_0000.nii.gz"))
        assert crop_labels.GetSpacing()[2] == pytest.approx(3.0) and crop_image.GetSize() == crop_labels.GetSize()
        kept = sitk.GetArrayFromImage(crop_labels)
        assert set(np.unique(kept)) == set(np.unique(array)), "every label of the case is in its ROI"


def test_make_roi_dataset_errors_name_the_fix(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    write_dataset(raw, 903, n_train=1, n_test=0, spec=SyntheticSpec(shape=(8, 32, 32), objects_per_class=1))
    with pytest.raises(UserError, match="one of small, middle, large or give --margin-mm"):
        write_roi_dataset("903", 904, "tiny", raw=raw, from_label=True)
    with pytest.raises(UserError, match="^unknown ROI scale 'tiny': use one of small, middle, large$"):
        write_roi_dataset("903", 904, "tiny", raw=raw)
    with pytest.raises(UserError, match="^--margin-mm grows the label's box: it needs --roi-from-label"):
        write_roi_dataset("903", 904, "small", margin_mm=(1.0, 1.0, 1.0), raw=raw)
    with pytest.raises(UserError, match="choose another --target-id"):
        write_roi_dataset("903", 903, "small", raw=raw)
    with pytest.raises(UserError, match="no raw dataset 905"):
        write_roi_dataset("905", 906, "small", raw=raw)
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(UserError, match=r"^nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw \(or pass "
                                        r"--raw\)$"):
        write_roi_dataset("903", 906, "small")
    custom = write_roi_dataset("903", 907, "wide", margin_mm=(0.0, 0.0, 0.0), raw=raw, from_label=True)
    assert json.loads((custom / "roi.json").read_text())["margin_mm"] == [0.0, 0.0, 0.0]


def test_the_command_line_writes_the_dataset(tmp_path, capsys):
    from nnunet_25d.cli import main

    raw = tmp_path / "raw"
    write_dataset(raw, 908, n_train=1, n_test=0, spec=SyntheticSpec(shape=(8, 32, 32), objects_per_class=1))
    main(["make-roi-dataset", "-d", "908", "--target-id", "909", "--scale", "large", "--raw", str(raw)])
    assert capsys.readouterr().out.strip().endswith("Dataset909_Synthetic25DROILarge")


# --- the multi-scale ensemble over ROI models' cross-validation -------------------------------------------------

def test_probabilities_map_back_into_the_box_and_background_elsewhere():
    rng = np.random.default_rng(0)
    source = image_of(rng.random((10, 12, 14)).astype(np.float32))
    box = Box((2, 3, 4), (7, 9, 12))
    roi_image, _ = roi_of(source, None, box, thickness=4.0)
    probabilities = rng.dirichlet(np.ones(3), box.shape).transpose(3, 0, 1, 2).astype(np.float32)
    mapped = in_source_grid(probabilities, roi_image, source)
    assert mapped.shape == (3, 10, 12, 14)
    np.testing.assert_allclose(mapped[(slice(None), *box.slices())], probabilities, atol=1e-6)
    outside = np.ones((10, 12, 14), bool)
    outside[box.slices()] = False
    assert np.all(mapped[0][outside] == 1) and np.all(mapped[1:, outside] == 0)


def exported_nnunet_dirs(tmp_path, monkeypatch) -> tuple:
    """(raw, preprocessed, results) under ``tmp_path``, exported as nnU-Net's three folder variables."""
    dirs = tuple(tmp_path / d for d in ("raw", "preprocessed", "results"))
    for variable, folder in zip(("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"), dirs):
        monkeypatch.setenv(variable, str(folder))
    return dirs


def fake_roi_model(nnunet_dirs, roi_folder, trainer: str, blob: bool) -> None:
    """What nnUNetv2_train --npz leaves for fold 0 of a model on ``roi_folder``: one-hot probabilities of the ROI's
    labels (plus a spurious class-1 blob in a corner), and the dataset's splits."""
    raw, preprocessed, results = nnunet_dirs
    model = results / roi_folder.name / f"{trainer}__nnUNetPlans__2d" / "fold_0" / "validation"
    model.mkdir(parents=True)
    cases = sorted(p.name[:-len(".nii.gz")] for p in (roi_folder / "labelsTr").glob("*.nii.gz"))
    for case in cases:
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(roi_folder / "labelsTr" / f"{case}.nii.gz")))
        if blob:
            labels[0, :2, :2] = 1
        one_hot = np.eye(3, dtype=np.float32)[labels].transpose(3, 0, 1, 2)
        np.savez_compressed(model / f"{case}.npz", probabilities=one_hot)
    (preprocessed / roi_folder.name).mkdir(parents=True, exist_ok=True)
    (preprocessed / roi_folder.name / "splits_final.json").write_text(json.dumps([{"train": [], "val": cases}]))


def test_roi_ensemble_maps_back_fuses_and_keeps_the_largest_component(tmp_path, monkeypatch):
    from nnunet_25d.roi.fusion import fuse_roi_cross_validation

    dirs = exported_nnunet_dirs(tmp_path, monkeypatch)
    write_dataset(dirs[0], 910, n_train=2, n_test=0, spec=SyntheticSpec(shape=(12, 48, 48), objects_per_class=1),
                  seed=5)
    rois = [write_roi_dataset("910", 911 + i, scale, slice_thickness=4.0, raw=dirs[0], from_label=True)
            for i, scale in enumerate(("small", "middle", "large"))]
    fake_roi_model(dirs, rois[0], "T", blob=True)  # two models on the small ROI put a blob at the same place
    fake_roi_model(dirs, rois[0], "U", blob=True)
    fake_roi_model(dirs, rois[2], "T", blob=False)
    models = [("911", "T", "2d"), ("911", "U", "2d"), ("913", "T", "2d")]
    summary = fuse_roi_cross_validation("910", models, [0], raw=dirs[0], output=tmp_path / "out")
    means = summary["mean_dice"]
    large = "Dataset913_Synthetic25DROILargeOracle/T__nnUNetPlans__2d"
    small = "Dataset911_Synthetic25DROISmallOracle/U__nnUNetPlans__2d"
    assert means[large] == {"tube": 1.0, "nodule": 1.0}, "a clean model maps back exactly"
    assert means[small]["tube"] < 1.0 and len(means) == 5
    assert means["fusion"]["tube"] < 1.0, "two of three models hold the blob"
    assert means["fusion + largest component"] == {"tube": 1.0, "nodule": 1.0}
    assert set(summary["placement"].values()) == {"label (oracle)"}, "the summary says the crops knew the label"
    written = sitk.ReadImage(str(tmp_path / "out" / "case_000.nii.gz"))
    source_labels = sitk.ReadImage(str(dirs[0] / "Dataset910_Synthetic25D" / "labelsTr" / "case_000.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source_labels))
    assert "| fusion + largest component | 1.000 | 1.000 |" in (tmp_path / "out" / "dice.md").read_text()


def test_roi_ensemble_refuses_models_of_another_source(tmp_path, monkeypatch):
    from nnunet_25d.roi.fusion import fuse_roi_cross_validation

    dirs = exported_nnunet_dirs(tmp_path, monkeypatch)
    for dataset in (920, 921):
        write_dataset(dirs[0], dataset, n_train=1, n_test=0, spec=SyntheticSpec(shape=(8, 32, 32),
                                                                                objects_per_class=1))
    roi = write_roi_dataset("921", 922, "small", raw=dirs[0], from_label=True)
    fake_roi_model(dirs, roi, "T", blob=False)
    with pytest.raises(UserError, match="cropped from Dataset921_Synthetic25D, not Dataset920_Synthetic25D"):
        fuse_roi_cross_validation("920", [("922", "T", "2d")], [0], raw=dirs[0])
    with pytest.raises(UserError, match="a model is given twice"):
        fuse_roi_cross_validation("921", [("922", "T", "2d")] * 2, [0], raw=dirs[0])
    with pytest.raises(UserError, match="not trained"):
        fuse_roi_cross_validation("921", [("922", "Other", "2d")], [0], raw=dirs[0])


# --- the ensemble's pieces by hand (from mutation testing) ------------------------------------------------------

def test_dice_by_hand_and_nan_where_neither_holds_the_class():
    from nnunet_25d.roi.fusion import dice

    prediction = np.array([[0, 1, 1, 2]])
    reference = np.array([[0, 1, 0, 0]])
    assert dice(prediction, reference, 1) == pytest.approx(2 / 3)
    assert dice(prediction, reference, 2) == 0.0, "one predicted voxel, none in the reference: 0, not NaN"
    assert np.isnan(dice(prediction, reference, 3))


def test_mean_dice_skips_undefined_cases_per_model_and_class():
    from nnunet_25d.roi.fusion import mean_dice

    labels = {"background": 0, "tube": 1, "nodule": 2}
    rows = [{"model": "a", "class": 1, "dice": 0.5}, {"model": "a", "class": 1, "dice": 1.0},
            {"model": "a", "class": 2, "dice": float("nan")}, {"model": "b", "class": 1, "dice": 0.2},
            {"model": "b", "class": 2, "dice": 0.4}, {"model": "b", "class": 2, "dice": float("nan")}]
    means = mean_dice(rows, labels)
    assert list(means) == ["a", "b"] and list(means["a"]) == ["tube", "nodule"]
    assert means["a"]["tube"] == pytest.approx(0.75) and np.isnan(means["a"]["nodule"])
    assert means["b"] == pytest.approx({"tube": 0.2, "nodule": 0.4})


def test_dice_table_is_a_markdown_table_row_per_model():
    from nnunet_25d.roi.fusion import dice_table

    table = dice_table({"a": {"tube": 0.75, "nodule": float("nan")}, "fusion": {"tube": 0.9, "nodule": 0.25}})
    assert table == ("| model | tube | nodule |\n|---|---|---|\n| a | 0.750 | nan |\n"
                     "| fusion | 0.900 | 0.250 |\n")


def roi_models_with_splits(tmp_path, splits: list[list[str]]):
    from nnunet_25d.roi.fusion import RoiModel

    models = []
    for i, val in enumerate(splits):
        name = f"Dataset{930 + i}_X"
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "splits_final.json").write_text(json.dumps([{"train": [], "val": val}]))
        models.append(RoiModel(tmp_path / "raw" / name, tmp_path / "results" / name / "T__nnUNetPlans__2d"))
    return models


def test_validation_cases_are_the_folds_cases_and_the_same_in_every_roi_dataset(tmp_path):
    from nnunet_25d.roi.fusion import validation_cases

    assert validation_cases(roi_models_with_splits(tmp_path / "one", [["b", "a"]]), tmp_path / "one", 0) == ["a", "b"]
    two = roi_models_with_splits(tmp_path / "two", [["a", "b"], ["b", "a"]])
    assert validation_cases(two, tmp_path / "two", 0) == ["a", "b"]
    differ = roi_models_with_splits(tmp_path / "differ", [["a"], ["a"], ["c"]])
    with pytest.raises(UserError, match="fold 0 holds different validation cases in the ROI datasets: .*make every "
                                        "ROI dataset from the same source cases"):
        validation_cases(differ, tmp_path / "differ", 0)
    with pytest.raises(UserError, match="splits_final.json is missing: nnU-Net writes it when the first fold of "
                                        "that dataset trains"):
        validation_cases(two, tmp_path / "elsewhere", 0)


def test_probabilities_are_read_as_float32_and_a_missing_npz_names_the_command(tmp_path):
    from nnunet_25d.roi.fusion import RoiModel

    model = RoiModel(tmp_path / "raw" / "Dataset940_X", tmp_path / "T__nnUNetPlans__2d")
    (model.model_folder / "fold_0" / "validation").mkdir(parents=True)
    stored = np.arange(6, dtype=np.float16).reshape(2, 1, 1, 3)
    np.savez(model.model_folder / "fold_0" / "validation" / "c.npz", probabilities=stored)
    read = model.probabilities(0, "c")
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, stored)
    with pytest.raises(UserError, match=r"fold_1/validation/c\.npz is missing: train fold 1 of "
                                        r"T__nnUNetPlans__2d with --npz \(or run `nnUNetv2_train \.\.\. 1 --val "
                                        r"--npz`\)"):
        model.probabilities(1, "c")


def test_in_source_grid_takes_half_precision_probabilities():
    source = image_of(np.zeros((6, 8, 8), np.float32))
    roi_image, _ = roi_of(source, None, Box((1, 2, 2), (4, 6, 6)), thickness=4.0)
    probabilities = np.full((2, 3, 4, 4), 0.5, np.float16)
    mapped = in_source_grid(probabilities, roi_image, source)
    assert mapped.dtype == np.float32 and np.all(mapped[:, 1:4, 2:6, 2:6] == 0.5)


def test_unset_nnunet_folders_name_the_export(monkeypatch):
    from nnunet_25d.roi.fusion import nnunet_folder

    monkeypatch.delenv("nnUNet_results", raising=False)
    with pytest.raises(UserError, match="^nnUNet_results is not set: export nnUNet_results=/path/to/nnUNet_results$"):
        nnunet_folder("nnUNet_results")


def ensemble_setup(tmp_path, monkeypatch, n_train: int = 1):
    """Dataset950 and a clean fake model on its small ROI (Dataset951), the nnU-Net folders exported."""
    dirs = exported_nnunet_dirs(tmp_path, monkeypatch)
    write_dataset(dirs[0], 950, n_train=n_train, n_test=0, spec=SyntheticSpec(shape=(8, 32, 32), objects_per_class=1))
    fake_roi_model(dirs, write_roi_dataset("950", 951, "small", slice_thickness=4.0, from_label=True), "T", blob=False)
    return dirs


def test_the_ensemble_command_writes_to_nnunet_results_and_can_run_again(tmp_path, monkeypatch, capsys):
    from nnunet_25d.cli import main

    dirs = ensemble_setup(tmp_path, monkeypatch)
    for _ in range(2):
        main(["ensemble-roi", "-d", "950", "-f", "0", "--models", "951:T:2d"])
        printed = capsys.readouterr().out
        assert printed.startswith("| model | tube | nodule |\n")
        assert "| fusion + largest component | 1.000 | 1.000 |" in printed
    out = dirs[2] / "Dataset950_Synthetic25D" / "roi_ensembles" / "951_T_2d"
    assert (out / "case_000.nii.gz").is_file() and json.loads((out / "summary.json").read_text())["folds"] == [0]


def test_the_ensemble_command_refuses_malformed_models_and_names_a_repeated_one(tmp_path, monkeypatch, capsys):
    from nnunet_25d.cli import main
    from nnunet_25d.roi.command import parse_model

    assert parse_model("951:T:2d") == ("951", "T", "2d")
    for text in ("951:T", "951::2d", "951:T:2d:x"):
        with pytest.raises(UserError, match=f"^--models takes ROI_DATASET:TRAINER:CONFIGURATION, got '{text}'$"):
            parse_model(text)
    ensemble_setup(tmp_path, monkeypatch)
    with pytest.raises(SystemExit):
        main(["ensemble-roi", "-d", "950", "-f", "0", "--models", "951:T:2d", "951:T:2d"])
    assert "a model is given twice: 951:T:2d, 951:T:2d" in capsys.readouterr().err


def test_the_command_line_defaults(tmp_path):
    from nnunet_25d.cli import build_parser

    ensemble = build_parser("ensemble-roi").parse_args(["ensemble-roi", "-d", "1", "--models", "2:T:2d"])
    assert (ensemble.folds, ensemble.plans, ensemble.output, ensemble.raw) == ([0, 1, 2, 3, 4], "nnUNetPlans", None,
                                                                               None)
    make = build_parser("make-roi-dataset").parse_args(["make-roi-dataset", "-d", "1", "--target-id", "2"])
    assert (make.scale, make.margin_mm, make.slice_thickness, make.raw) == ("middle", None, 3.0, None)
    assert (make.fold, make.body_threshold, make.roi_from_label) == (None, None, False)
    typed = build_parser("make-roi-dataset").parse_args(
        ["make-roi-dataset", "--dataset", "1", "--target-id", "2", "--margin-mm", "1", "2", "3",
         "--slice-thickness", "2.5", "--raw", str(tmp_path)])
    assert (typed.dataset, typed.target_id, typed.margin_mm, typed.slice_thickness, typed.raw) == \
        ("1", 2, [1.0, 2.0, 3.0], 2.5, tmp_path)
    for command, argv in (("make-roi-dataset", ["-d", "1"]), ("make-roi-dataset", ["--target-id", "2"]),
                          ("ensemble-roi", ["-d", "1"]), ("ensemble-roi", ["--models", "2:T:2d"])):
        with pytest.raises(SystemExit):
            build_parser(command).parse_args([command, *argv])


def test_make_roi_dataset_help_lists_every_scales_margins(capsys):
    from nnunet_25d.cli import main

    with pytest.raises(SystemExit):
        main(["make-roi-dataset", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(z/y/x mm: small 6/10/10, middle 12/30/30, large 24/60/60)" in help_text


def test_the_command_line_takes_margins_instead_of_a_scale(tmp_path, capsys):
    from nnunet_25d.cli import main

    raw = tmp_path / "raw"
    write_dataset(raw, 960, n_train=1, n_test=0, spec=SyntheticSpec(shape=(8, 32, 32), objects_per_class=1))
    main(["make-roi-dataset", "-d", "960", "--target-id", "961", "--scale", "tight", "--margin-mm", "0", "4", "0.8",
          "--slice-thickness", "2", "--roi-from-label", "--raw", str(raw)])
    roi = json.loads((raw / "Dataset961_Synthetic25DROITightOracle" / "roi.json").read_text())
    assert (roi["margin_mm"], roi["slice_thickness"]) == ([0.0, 4.0, 0.8], 2.0)


def test_margins_that_are_whole_voxels_add_exactly_those_voxels():
    labels = np.zeros((20, 30, 40), np.uint8)
    labels[9:11, 14:16, 19:21] = 1
    assert roi_box(foreground_box(labels), labels.shape, (4.0, 0.5, 0.8), (8.0, 2.0, 1.6)) == \
        Box((7, 10, 17), (13, 20, 23))


def test_the_grid_keeps_each_in_plane_spacing_and_one_slice_stays_one_slice():
    source = image_of(np.ones((6, 8, 10), np.float32), spacing_zyx=(3.0, 0.8, 0.7))
    image, _ = roi_of(source, None, Box((2, 1, 1), (3, 7, 9)), thickness=3.0)
    assert image.GetSize() == (8, 6, 1) and image.GetSpacing() == pytest.approx((0.7, 0.8, 3.0))


def test_sources_are_found_by_id_or_name_and_names_keep_their_underscores(tmp_path):
    from nnunet_25d.roi.dataset import roi_dataset_name, source_dataset

    raw = tmp_path / "raw"
    write_dataset(raw, 970, n_train=1, n_test=0, spec=SyntheticSpec(shape=(8, 32, 32), objects_per_class=1))
    assert source_dataset(raw, "970") == source_dataset(raw, "Dataset970_Synthetic25D") == \
        raw / "Dataset970_Synthetic25D"
    assert roi_dataset_name(tmp_path / "Dataset012_My_Liver_CT", 13, "small") == "Dataset013_My_Liver_CTROISmall"


def test_make_roi_dataset_defaults_to_the_middle_scale_and_writes_readable_json(tmp_path):
    raw = tmp_path / "raw"
    write_dataset(raw, 965, n_train=2, n_test=0, spec=SyntheticSpec(shape=(8, 32, 32), objects_per_class=1))
    target = write_roi_dataset("965", 966, raw=raw)
    assert target.name == "Dataset966_Synthetic25DROIMiddle"
    source_description = json.loads((raw / "Dataset965_Synthetic25D" / "dataset.json").read_text())
    for name in ("dataset.json", "roi.json"):
        assert (target / name).read_text().startswith('{\n  "'), f"{name} is indented for people to read"
    assert json.loads((target / "dataset.json").read_text()) == source_description


def test_make_roi_dataset_refuses_a_thickness_of_zero_but_takes_thin_slices(tmp_path):
    raw = tmp_path / "raw"
    write_dataset(raw, 967, n_train=1, n_test=0, spec=SyntheticSpec(shape=(4, 32, 32), objects_per_class=1))
    with pytest.raises(UserError, match="^slice thickness must be > 0 mm, got 0.0$"):
        write_roi_dataset("967", 968, "small", slice_thickness=0.0, raw=raw)
    thin = write_roi_dataset("967", 968, "large", slice_thickness=0.5, raw=raw)
    labels = sitk.ReadImage(str(next((thin / "labelsTr").glob("*.nii.gz"))))
    assert labels.GetSpacing()[2] == pytest.approx(0.5)


def test_make_roi_dataset_refuses_2d_images_by_name(tmp_path):
    source = tmp_path / "raw" / "Dataset969_Flat"
    for sub in ("imagesTr", "labelsTr"):
        (source / sub).mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.float32)), str(source / "imagesTr" / "a_0000.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((8, 8), np.uint8)), str(source / "labelsTr" / "a.nii.gz"))
    (source / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1},
                                                     "numTraining": 1, "file_ending": ".nii.gz"}))
    with pytest.raises(UserError, match="^a_0000.nii.gz: ROI crops need 3D images, this one is 2D$"):
        write_roi_dataset("969", 970, "small", raw=tmp_path / "raw")
    with pytest.raises(UserError, match="^a: ROI crops need 3D images, this one is 2D$"):
        write_roi_dataset("969", 970, "small", raw=tmp_path / "raw", from_label=True)


def test_the_ensemble_records_every_case_and_writes_labels_as_uint8(tmp_path, monkeypatch, capsys):
    from nnunet_25d.cli import main
    from nnunet_25d.roi.fusion import dice_table

    dirs = ensemble_setup(tmp_path, monkeypatch, n_train=2)
    roi = dirs[0] / "Dataset951_Synthetic25DROISmallOracle"
    fake_roi_model(dirs, roi, "U", blob=False)
    monkeypatch.delenv("nnUNet_raw")
    out = tmp_path / "chosen"
    main(["ensemble-roi", "-d", "950", "-f", "0", "--models", "951:T:2d", "951:U:2d", "--output", str(out),
          "--raw", str(dirs[0])])
    text = (out / "summary.json").read_text()
    summary = json.loads(text)
    assert text.startswith('{\n  "') and summary["source"] == "Dataset950_Synthetic25D"
    assert summary["models"] == ["Dataset951_Synthetic25DROISmallOracle/T__nnUNetPlans__2d",
                                 "Dataset951_Synthetic25DROISmallOracle/U__nnUNetPlans__2d"]
    models = {f"Dataset951_Synthetic25DROISmallOracle/{t}__nnUNetPlans__2d" for t in "TU"} | \
        {"fusion", "fusion + largest component"}
    assert {(r["fold"], r["case"], r["model"], r["class"]) for r in summary["cases"]} == \
        {(0, case, model, c) for case in ("case_000", "case_001") for model in models for c in (1, 2)}
    assert capsys.readouterr().out == dice_table(summary["mean_dice"]), "the table, nothing after it"
    assert sitk.ReadImage(str(out / "case_001.nii.gz")).GetPixelID() == sitk.sitkUInt8
    default = dirs[2] / "Dataset950_Synthetic25D" / "roi_ensembles" / "951_T_2d__951_U_2d"
    assert not default.exists(), "--output replaces the default folder"
    main(["ensemble-roi", "-d", "950", "-f", "0", "--models", "951:T:2d", "951:U:2d", "--raw", str(dirs[0])])
    assert (default / "summary.json").is_file()


@pytest.mark.integration
def test_an_roi_model_trained_by_nnunet_fuses_back_onto_the_source_cases(nnunet, tiny_dataset):
    """make-roi-dataset (image-placed, fold 0's fractions) -> nnUNetv2_plan_and_preprocess -> nnUNetv2_train --npz
    -> ensemble-roi, the real commands: the fused segmentations lie on the source cases' grids and every validation
    case is scored."""
    trainer = "nnUNetTrainer25DPEAttention_2epochs_5iters"
    nnunet.run("nnunet25d", "make-roi-dataset", "-d", "971", "--target-id", "981", "--scale", "large", "--fold", "0")
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", "981", "-c", "2d", "-np", "1")
    nnunet.run("nnUNetv2_train", "981", "2d", "0", "-tr", trainer, "-device", "cpu", "--npz", training=True)
    printed = nnunet.run("nnunet25d", "ensemble-roi", "-d", "971", "-f", "0", "--models", f"981:{trainer}:2d").stdout
    assert "| fusion + largest component |" in printed
    out = nnunet.results / tiny_dataset / "roi_ensembles" / f"981_{trainer}_2d"
    summary = json.loads((out / "summary.json").read_text())
    splits = json.loads((nnunet.preprocessed / "Dataset981_Synthetic25DROILarge" / "splits_final.json").read_text())
    assert {row["case"] for row in summary["cases"]} == set(splits[0]["val"])
    for case in splits[0]["val"]:
        fused = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        source = sitk.ReadImage(str(nnunet.raw / tiny_dataset / "labelsTr" / f"{case}.nii.gz"))
        assert fused.GetSize() == source.GetSize() and fused.GetSpacing() == pytest.approx(source.GetSpacing())
        assert fused.GetOrigin() == pytest.approx(source.GetOrigin())
