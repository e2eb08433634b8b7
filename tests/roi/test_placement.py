"""Mei et al.'s fields of view from the image alone: the body mask by hand, the thresholds by modality, the fractions
learned and placed by hand, and on the CT body phantom: the same fields of view with the labels absent or zeroed,
no test-case label ever opened, every field of view mapped back onto its source grid."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_25d.errors import UserError
from nnunet_25d.roi.body import CT_BODY_THRESHOLD_HU, body_box, body_mask, body_threshold, window
from nnunet_25d.roi.crop import Box, foreground_box
from nnunet_25d.roi.dataset import fields_of_view, learning_cases, write_roi_dataset
from nnunet_25d.roi.fusion import in_source_grid
from nnunet_25d.roi.phantom import write_body_phantom_dataset
from nnunet_25d.roi.placement import Fractions, learn_fields_of_view, place, relative

PHANTOM = "Dataset990_BodyPhantom"


def test_windows_are_odd_and_follow_the_spacing():
    assert [window(13, 1), window(6, 1), window(13, 0.8), window(6, 2), window(0.1, 1)] == [13, 7, 17, 5, 1]


def test_body_box_by_hand_keeps_the_largest_component_and_drops_the_couch():
    """A 40-row body, a 2-row couch below it, a dark hole inside: erosion by 6 and dilation by 3 pixels (13 and 7
    pixel windows at 1 mm) leave the body 3 pixels smaller on every side, the couch gone, the hole filled."""
    array = np.full((2, 80, 90), -1000.0, np.float32)
    array[:, 10:50, 20:70] = 40.0
    array[:, 30:34, 40:44] = -1000.0  # air inside (a hole)
    array[:, 56:58, 5:85] = 0.0  # the couch
    array[1, 70:79, 0:9] = 40.0  # a small blob in one slice: not that slice's largest component
    mask = body_mask(array, (3.0, 1.0, 1.0), CT_BODY_THRESHOLD_HU)
    expected = np.zeros((80, 90), bool)
    expected[13:47, 23:67] = True
    np.testing.assert_array_equal(mask[0], expected)
    np.testing.assert_array_equal(mask[1], expected)
    assert body_box(array, (3.0, 1.0, 1.0), CT_BODY_THRESHOLD_HU) == Box((0, 13, 23), (2, 47, 67))


def test_the_largest_component_wins_wherever_it_lies_and_the_threshold_itself_is_not_body():
    """Two bodies that survive the erosion: the larger is labelled second (below the smaller), and a band exactly at
    the threshold stays background. Windows 1 pixel (no erosion or dilation)."""
    array = np.full((1, 80, 60), -1000.0, np.float32)
    array[0, 2:12, 5:15] = 40.0  # small, first in raster order
    array[0, 30:70, 10:50] = 40.0  # large
    array[0, 70:75, 10:50] = CT_BODY_THRESHOLD_HU  # touching the large body: body only if the threshold counted
    mask = body_mask(array, (3.0, 1.0, 1.0), CT_BODY_THRESHOLD_HU, erosion_mm=0.5, dilation_mm=0.5)
    expected = np.zeros((80, 60), bool)
    expected[30:70, 10:50] = True
    np.testing.assert_array_equal(mask[0], expected)


def test_windows_follow_each_in_plane_spacing_and_the_dilation_given():
    """1 mm rows, 2 mm columns: a 13 mm erosion is 13 rows and 7 columns (6 and 3 off every side), a 4 mm dilation
    5 rows and 3 columns (2 and 1 back on every side)."""
    array = np.full((1, 60, 60), -1000.0, np.float32)
    array[0, 10:50, 10:50] = 40.0
    box = body_box(array, (3.0, 1.0, 2.0), CT_BODY_THRESHOLD_HU, erosion_mm=13, dilation_mm=4)
    assert box == Box((0, 14, 12), (1, 46, 48))


def test_the_otsu_threshold_is_half_way_between_the_two_classes_means():
    array = np.where(np.arange(4 * 30 * 30).reshape(4, 30, 30) % 5 < 2, 100.0, 500.0)
    array[0, 0, 0] = 1e6  # above the 99th percentile: left out
    assert body_threshold(array, "MRI") == pytest.approx(300.0)


def test_no_body_gives_the_whole_array():
    assert body_box(np.full((3, 20, 20), -1000.0), (3.0, 1.0, 1.0), -600.0) == Box((0, 0, 0), (3, 20, 20))


def test_thresholds_ct_from_hounsfield_units_other_modalities_from_otsu():
    rng = np.random.default_rng(0)
    array = np.where(rng.random((4, 30, 30)) < 0.4, 100.0, 500.0) + rng.normal(0, 5, (4, 30, 30))
    array[0, 0, 0] = 1e6  # one extreme voxel does not move a percentile-bounded Otsu
    assert body_threshold(array, "CT") == body_threshold(array, " ct ") == -600.0
    threshold = body_threshold(array, "MRI")
    assert array[array < 300].max() < threshold < array[array > 300].min(), "Otsu separates the two tissues"
    assert body_threshold(array, "T2") == threshold


def test_fractions_learned_by_hand():
    """Body boxes of 100 voxels from 0 and of 50 voxels from 50; targets at 20-40 and at 60-70 (0.2-0.4 of the first
    body, 0.2-0.4 of the second); a case without target is skipped."""
    body_a, body_b = Box((0, 0, 0), (10, 100, 100)), Box((0, 50, 50), (10, 100, 100))
    target_a, target_b = Box((2, 20, 30), (5, 40, 50)), Box((1, 60, 60), (8, 70, 80))
    assert relative(target_b, body_b) == Fractions((0.1, 0.2, 0.2), (0.8, 0.4, 0.6))
    learned = learn_fields_of_view([(body_a, target_a), (body_b, target_b), (body_a, None)])
    assert learned["small"] == Fractions((0.1, 0.2, 0.2), (0.8, 0.4, 0.6))
    assert learned["large"] == Fractions((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert learned["middle"] == Fractions((0.05, 0.1, 0.1), (0.9, 0.7, 0.8))
    outside = learn_fields_of_view([(body_a, Box((0, 0, 0), (12, 100, 110)))])  # a target past the body box
    assert outside["large"] == Fractions((0.0, 0.0, 0.0), (1.2, 1.0, 1.1))


def test_no_target_anywhere_cannot_teach_a_field_of_view():
    with pytest.raises(ValueError, match="no training case holds a labelled target"):
        learn_fields_of_view([(Box((0, 0, 0), (1, 1, 1)), None)])


def test_place_by_hand_rounds_outward_and_clips():
    body = Box((0, 10, 20), (10, 60, 70))
    assert place(Fractions((0.0, 0.21, 0.5), (1.0, 0.39, 0.6)), body, (10, 100, 100)) == Box((0, 20, 45), (10, 30, 50))
    assert place(Fractions((-0.5, -1.0, 0.0), (2.0, 3.0, 1.0)), body, (10, 100, 100)) == Box((0, 0, 20), (10, 100, 70))
    assert place(Fractions((1.5, 0.0, 0.0), (1.6, 0.0, 0.0)), body, (10, 100, 100)).shape == (1, 1, 1)


# --- on the CT body phantom --------------------------------------------------------------------------------------

@pytest.fixture
def phantom(tmp_path) -> Path:
    """10 training and 2 test cases (labelsTs too, to check they stay closed)."""
    raw = tmp_path / "raw"
    write_body_phantom_dataset(raw, 990, n_train=10, n_test=2, shape=(8, 64, 64), seed=4)
    return raw


def roi_json(folder: Path) -> dict:
    return json.loads((folder / "roi.json").read_text())


def test_learning_cases_are_nnunets_training_split():
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    cases = [f"c{i}" for i in range(10)]
    assert learning_cases(cases, None) == cases
    assert learning_cases(cases, 2) == sorted(generate_crossval_split(cases, 12345, 5)[2]["train"])
    assert len(learning_cases(cases, 2)) == 8
    with pytest.raises(UserError, match="--fold 5: nnU-Net's split has folds 0-4"):
        learning_cases(cases, 5)


def test_fields_of_view_are_the_same_with_the_labels_zeroed_or_gone(phantom, tmp_path):
    """Fold 0's validation labels and the test labels replaced by zeros, then the test labels deleted: the learned
    fractions and every validation and test case's three fields of view stay the same."""
    reference = {scale: write_roi_dataset("990", 991 + i, scale, raw=phantom, fold=0)
                 for i, scale in enumerate(("small", "middle", "large"))}
    roi = json.loads((reference["small"] / "roi.json").read_text())
    validation = sorted(set(roi["cases"]) - set(roi["learned_from"]))
    assert len(validation) == 2 and len(roi["test_cases"]) == 2
    zeroed = tmp_path / "zeroed"
    shutil.copytree(phantom / PHANTOM, zeroed / PHANTOM)
    for path in [zeroed / PHANTOM / "labelsTr" / f"{c}.nii.gz" for c in validation] + \
            list((zeroed / PHANTOM / "labelsTs").glob("*.nii.gz")):
        labels = sitk.ReadImage(str(path))
        blank = sitk.GetImageFromArray(np.zeros(sitk.GetArrayFromImage(labels).shape, np.uint8))
        blank.CopyInformation(labels)
        sitk.WriteImage(blank, str(path))
    for i, scale in enumerate(("small", "middle", "large")):
        again = json.loads((write_roi_dataset("990", 991 + i, scale, raw=zeroed, fold=0) / "roi.json").read_text())
        original = json.loads((reference[scale] / "roi.json").read_text())
        assert again["fractions"] == original["fractions"]
        assert again["cases"] == original["cases"] and again["test_cases"] == original["test_cases"]
    shutil.rmtree(zeroed / PHANTOM / "labelsTs")
    shutil.rmtree(zeroed / "Dataset991_BodyPhantomROISmall")
    again = json.loads((write_roi_dataset("990", 991, "small", raw=zeroed, fold=0) / "roi.json").read_text())
    assert again["test_cases"] == roi["test_cases"]
    # one image alone in a folder, no label anywhere: the stored fractions place all three fields of view
    alone = tmp_path / "alone"
    alone.mkdir()
    for case, split in ((validation[0], "Tr"), (sorted(roi["test_cases"])[0], "Ts")):
        shutil.copy(phantom / PHANTOM / f"images{split}" / f"{case}_0000.nii.gz", alone / "image.nii.gz")
        found = fields_of_view(alone / "image.nii.gz", roi)
        for scale in ("small", "middle", "large"):
            stored = json.loads((reference[scale] / "roi.json").read_text())
            boxes = stored["cases" if split == "Tr" else "test_cases"][case]
            assert found[scale] == Box(tuple(boxes["start"]), tuple(boxes["stop"]))


def test_no_roi_code_path_opens_a_test_or_validation_label_to_place_a_crop(phantom, monkeypatch):
    """Every file SimpleITK opens is recorded. make-roi-dataset never opens a test label (labelsTs); placing the
    fields of view opens the labels of fold 0's training cases only (the validation labels are opened afterwards, once
    each, to crop them for nnU-Net's scoring); fields_of_view opens the image alone."""
    opened: list[str] = []
    read = sitk.ReadImage

    def recording(path, *args, **kwargs):
        opened.append(str(path))
        return read(path, *args, **kwargs)

    monkeypatch.setattr(sitk, "ReadImage", recording)
    target = write_roi_dataset("990", 991, "middle", raw=phantom, fold=0)
    roi = json.loads((target / "roi.json").read_text())
    labels = [Path(p) for p in opened if "/labels" in p]
    assert not [p for p in labels if p.parent.name == "labelsTs"], "a test label was opened"
    first_crop = next(i for i, p in enumerate(opened) if "/labels" in p and Path(p).stem.split(".")[0] not in
                      roi["learned_from"])
    placed_before = {Path(p).name.split(".")[0] for p in opened[:first_crop] if "/labels" in p}
    assert placed_before == set(roi["learned_from"])
    validation = set(roi["cases"]) - set(roi["learned_from"])
    assert sorted(Path(p).name.split(".")[0] for p in labels if Path(p).name.split(".")[0] in validation) == \
        sorted(validation), "each validation label opened once, to crop it"
    opened.clear()
    for case in roi["test_cases"]:
        fields_of_view(phantom / PHANTOM / "imagesTs" / f"{case}_0000.nii.gz", roi)
    assert opened and all("/imagesTs/" in p for p in opened)


def test_the_small_field_of_view_holds_every_target_and_maps_back_onto_the_source_grid(phantom):
    """Every training target lies in its small field of view (that is how it was learned); the phantom's validation
    and test targets do too (their place in the body is the training cases'). One-hot probabilities of the crop's
    labels, mapped back at the source thickness, give the source labels on the source grid."""
    target = write_roi_dataset("990", 991, "small", raw=phantom, slice_thickness=4.0, fold=0)
    roi = json.loads((target / "roi.json").read_text())
    for split, key in (("Tr", "cases"), ("Ts", "test_cases")):
        for case, box in roi[key].items():
            source_labels = sitk.ReadImage(str(phantom / PHANTOM / f"labels{split}" / f"{case}.nii.gz"))
            source = sitk.GetArrayFromImage(source_labels)
            held = foreground_box(source)
            assert all(a >= s and b <= e for a, b, s, e in zip(held.start, held.stop, box["start"], box["stop"]))
            if split == "Ts":
                continue
            crop = sitk.ReadImage(str(target / "labelsTr" / f"{case}.nii.gz"))
            one_hot = np.eye(3, dtype=np.float32)[sitk.GetArrayFromImage(crop)].transpose(3, 0, 1, 2)
            image = sitk.ReadImage(str(phantom / PHANTOM / "imagesTr" / f"{case}_0000.nii.gz"))
            mapped = in_source_grid(one_hot, sitk.ReadImage(str(target / "imagesTr" / f"{case}_0000.nii.gz")), image)
            assert mapped.shape[1:] == source.shape
            np.testing.assert_array_equal(mapped.argmax(0), source)
    small = Box(tuple(roi["cases"]["case_000"]["start"]), tuple(roi["cases"]["case_000"]["stop"]))
    assert small.shape[1] < 64 and small.shape[2] < 64, "the small field of view is a real crop"


def test_three_scales_nest_and_the_large_one_is_the_body_box(phantom):
    rois = [roi_json(write_roi_dataset("990", 991 + i, s, raw=phantom, fold=1))
            for i, s in enumerate(("small", "middle", "large"))]
    for case in rois[0]["cases"]:
        boxes = [Box(tuple(r["cases"][case]["start"]), tuple(r["cases"][case]["stop"])) for r in rois]
        for inner, outer in zip(boxes, boxes[1:]):
            assert all(a >= s and b <= e for a, b, s, e in zip(inner.start, inner.stop, outer.start, outer.stop))
        image = sitk.ReadImage(str(phantom / PHANTOM / "imagesTr" / f"{case}_0000.nii.gz"))
        array = sitk.GetArrayFromImage(image)
        assert boxes[2] == body_box(array, tuple(image.GetSpacing()[::-1]), -600.0)
    assert rois[0]["fold"] == 1 and rois[0]["body"]["modality"] == "CT" and rois[0]["placement"] == "image"


def test_the_ensemble_refuses_fields_of_view_learned_from_its_validation_cases(phantom, monkeypatch):
    from nnunet_25d.roi.fusion import RoiModel, check_no_validation_label_taught

    everything = write_roi_dataset("990", 991, "small", raw=phantom)
    fold0 = write_roi_dataset("990", 992, "small", raw=phantom, fold=0)
    validation = sorted(set(roi_json(fold0)["cases"]) - set(roi_json(fold0)["learned_from"]))
    check_no_validation_label_taught([RoiModel(fold0, fold0)], 0, validation)
    with pytest.raises(UserError, match=r"Dataset991_BodyPhantomROISmall's fields of view were learned from the "
                                        r"labels of fold 0's validation case\(s\) .*: make it with make-roi-dataset "
                                        r"--fold 0$"):
        check_no_validation_label_taught([RoiModel(everything, everything)], 0, validation)
    oracle = write_roi_dataset("990", 993, "small", raw=phantom, from_label=True)
    check_no_validation_label_taught([RoiModel(oracle, oracle)], 0, validation)  # the oracle is named, not refused
    assert not (oracle / "imagesTs").exists(), "the oracle has no label to place a test case's crop"


def test_test_predictions_map_back_onto_the_source_test_images(phantom, tmp_path, capsys):
    """Predictions of the three image-placed ROI datasets' imagesTs (here: one-hot of the test labels cropped to the
    stored boxes, as a perfect model would give) fuse back onto the source's imagesTs grid: the written
    segmentations are the test labels, and the scores say so."""
    from nnunet_25d.cli import main
    from nnunet_25d.roi.crop import roi_of as crop

    pairs = []
    for i, scale in enumerate(("small", "middle", "large")):
        target = write_roi_dataset("990", 991 + i, scale, raw=phantom, slice_thickness=4.0, fold=0)
        folder = tmp_path / f"predicted_{scale}"
        folder.mkdir()
        for case, box in roi_json(target)["test_cases"].items():
            image = sitk.ReadImage(str(phantom / PHANTOM / "imagesTs" / f"{case}_0000.nii.gz"))
            labels = sitk.ReadImage(str(phantom / PHANTOM / "labelsTs" / f"{case}.nii.gz"))
            _, cropped = crop(image, labels, Box(tuple(box["start"]), tuple(box["stop"])), 4.0)
            one_hot = np.eye(3, dtype=np.float32)[sitk.GetArrayFromImage(cropped)].transpose(3, 0, 1, 2)
            np.savez_compressed(folder / f"{case}.npz", probabilities=one_hot)
        pairs.append(f"{991 + i}:{folder}")
    out = tmp_path / "fused"
    main(["ensemble-roi", "-d", "990", "--test-predictions", *pairs, "--output", str(out), "--raw", str(phantom)])
    assert "| fusion + largest component | 1.000 | 1.000 |" in capsys.readouterr().out
    for case in ("case_010", "case_011"):
        written = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        source = sitk.ReadImage(str(phantom / PHANTOM / "labelsTs" / f"{case}.nii.gz"))
        assert written.GetSize() == source.GetSize() and written.GetOrigin() == pytest.approx(source.GetOrigin())
        np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source))


def test_test_predictions_need_an_output_and_image_placed_crops(phantom, tmp_path):
    from nnunet_25d.cli import main
    from nnunet_25d.roi.fusion import fuse_roi_predictions

    oracle = write_roi_dataset("990", 991, "small", raw=phantom, from_label=True)
    with pytest.raises(SystemExit):
        main(["ensemble-roi", "-d", "990", "--test-predictions", f"991:{tmp_path}", "--raw", str(phantom)])
    with pytest.raises(UserError, match="cropped around each case's label \\(the oracle\\): new images need an "
                                        "image-placed ROI dataset"):
        fuse_roi_predictions("990", [("991", tmp_path)], tmp_path / "out", raw=phantom)
    assert oracle.name.endswith("Oracle")
    with pytest.raises(SystemExit):
        main(["ensemble-roi", "-d", "990", "--models", "991:T:2d", "--test-predictions", f"991:{tmp_path}"])
