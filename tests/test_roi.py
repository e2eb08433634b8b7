"""Mei et al.'s ROI crops: the box by hand, the crop against the source array, the 3 mm grid against a linear ramp,
the raw dataset nnunet25d make-roi-dataset writes, its errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_25d.errors import UserError
from nnunet_25d.roi.crop import ROI_SCALES, Box, foreground_box, roi_box, roi_of
from nnunet_25d.roi.dataset import write_roi_dataset
from nnunet_25d.synthetic import SyntheticSpec, write_dataset


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
    target = write_roi_dataset("901", 902, "small", raw=raw)
    assert target.name == "Dataset902_Synthetic25DROISmall"
    roi = json.loads((target / "roi.json").read_text())
    assert roi["scale"] == "small" and roi["margin_mm"] == list(ROI_SCALES["small"]) and roi["slice_thickness"] == 3.0
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
        write_roi_dataset("903", 904, "tiny", raw=raw)
    with pytest.raises(UserError, match="choose another --target-id"):
        write_roi_dataset("903", 903, "small", raw=raw)
    with pytest.raises(UserError, match="no raw dataset 905"):
        write_roi_dataset("905", 906, "small", raw=raw)
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(UserError, match="export nnUNet_raw"):
        write_roi_dataset("903", 906, "small")
    custom = write_roi_dataset("903", 907, "wide", margin_mm=(0.0, 0.0, 0.0), raw=raw)
    assert json.loads((custom / "roi.json").read_text())["margin_mm"] == [0.0, 0.0, 0.0]


def test_the_command_line_writes_the_dataset(tmp_path, capsys):
    from nnunet_25d.cli import main

    raw = tmp_path / "raw"
    write_dataset(raw, 908, n_train=1, n_test=0, spec=SyntheticSpec(shape=(8, 32, 32), objects_per_class=1))
    main(["make-roi-dataset", "-d", "908", "--target-id", "909", "--scale", "large", "--raw", str(raw)])
    assert capsys.readouterr().out.strip().endswith("Dataset909_Synthetic25DROILarge")
