"""The anatomy dataset: the MNI152 template's labels, the thick-slice profile, an undeformed case against the
template itself, the written raw dataset, the missing-extra error."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_25d.datasets import anatomy
from nnunet_25d.datasets.anatomy import AnatomySpec, bias_field, make_anatomy_case, read_template, slice_profile
from nnunet_25d.errors import UserError

STILL = AnatomySpec(in_plane_mm=1.0, slice_thickness_mm=(1.0,), rotation_degrees=0.0, translation_mm=0.0,
                    elastic_mm=0.0, bias=0.0, noise=0.0)


@pytest.fixture(scope="module")
def template():
    return read_template()


def test_labels_are_the_larger_tissue_map_above_one_half(template):
    t1, labels = template
    folder = anatomy.template_folder()
    gm, wm = (sitk.GetArrayFromImage(sitk.ReadImage(str(folder / anatomy.TEMPLATE_FILES[k]))) for k in ("gm", "wm"))
    array = sitk.GetArrayFromImage(labels)
    assert np.array_equal(array == 1, (gm > 0.5) & (gm >= wm)) and np.array_equal(array == 2, (wm > 0.5) & (wm > gm))
    assert 0.05 < (array == 1).mean() < 0.2 and 0.03 < (array == 2).mean() < 0.15
    assert labels.GetSpacing() == t1.GetSpacing() == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("thickness, expected", [(1.0, [1.0]), (3.0, [1 / 3] * 3),
                                                 (4.0, [0.125, 0.25, 0.25, 0.25, 0.125]), (2.0, [0.25, 0.5, 0.25])])
def test_slice_profile_is_each_voxels_overlap_with_the_slice(thickness, expected):
    np.testing.assert_allclose(slice_profile(thickness, 1.0), expected)


def test_an_undeformed_case_at_one_mm_is_the_template(template):
    t1, labels = template
    image, label_image = make_anatomy_case(t1, labels, STILL, 1.0, np.random.default_rng(0))
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(t1), atol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label_image), sitk.GetArrayFromImage(labels))
    assert image.GetOrigin() == pytest.approx(t1.GetOrigin()) and image.GetDirection() == t1.GetDirection()


def test_thick_slices_average_the_template_over_their_thickness(template):
    t1, labels = template
    spec = AnatomySpec(in_plane_mm=1.0, slice_thickness_mm=(3.0,), rotation_degrees=0.0, translation_mm=0.0,
                       elastic_mm=0.0, bias=0.0, noise=0.0)
    image, label_image = make_anatomy_case(t1, labels, spec, 3.0, np.random.default_rng(0))
    source = sitk.GetArrayFromImage(t1)
    assert image.GetSpacing() == (1.0, 1.0, 3.0) and image.GetSize()[2] == source.shape[0] // 3
    slab = source[3 * 20:3 * 20 + 3].mean(axis=0)  # thick slice 20 covers template slices 60, 61, 62
    np.testing.assert_allclose(sitk.GetArrayFromImage(image)[20], slab, atol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label_image)[20], sitk.GetArrayFromImage(labels)[61])


def test_bias_field_is_smooth_and_within_its_amplitude():
    field = bias_field((10, 20, 30), 0.2, np.random.default_rng(0))
    assert field.min() >= 0.8 - 1e-9 and field.max() <= 1.2 + 1e-9 and np.abs(field - 1).max() == pytest.approx(0.2)
    assert np.abs(np.diff(field, axis=2)).max() < 0.05


def test_written_dataset_has_the_cases_thickness_and_both_tissues(tmp_path):
    spec = AnatomySpec(in_plane_mm=6.0, slice_thickness_mm=(4.0, 6.0))
    folder = anatomy.write_anatomy_dataset(tmp_path, 930, n_train=2, n_test=1, spec=spec, seed=1)
    description = json.loads((folder / "dataset.json").read_text())
    assert description["labels"] == {"background": 0, "grey_matter": 1, "white_matter": 2}
    assert description["numTraining"] == 2
    for split, case, thickness in (("Tr", 0, 4.0), ("Tr", 1, 6.0), ("Ts", 2, 4.0)):
        image = sitk.ReadImage(str(folder / f"images{split}" / f"case_{case:03d}_0000.nii.gz"))
        labels = sitk.ReadImage(str(folder / f"labels{split}" / f"case_{case:03d}.nii.gz"))
        assert image.GetSpacing() == pytest.approx((6.0, 6.0, thickness)) and image.GetSize() == labels.GetSize()
        assert set(np.unique(sitk.GetArrayFromImage(labels))) == {0, 1, 2}


def test_without_nilearn_the_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(anatomy.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"nnunet_25d\[anatomy\]"):
        anatomy.template_folder()
