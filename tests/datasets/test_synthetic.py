import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_25d.datasets.synthetic import LABELS, SyntheticSpec, make_case, write_dataset

SPEC = SyntheticSpec(shape=(12, 40, 40), objects_per_class=3, radius_range=(2, 4))


def test_same_seed_same_data_other_seed_other_data():
    a = make_case(SPEC, np.random.default_rng(3))
    b = make_case(SPEC, np.random.default_rng(3))
    c = make_case(SPEC, np.random.default_rng(4))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def _slice_extents(label: np.ndarray, value: int) -> list[int]:
    components, n = ndimage.label(label == value)
    return [int(np.ptp(np.nonzero(components == i)[0])) + 1 for i in range(1, n + 1)]


def test_nodules_span_one_slice_tubes_several():
    for seed in range(5):
        _, label = make_case(SPEC, np.random.default_rng(seed))
        assert _slice_extents(label, LABELS["nodule"]) == [1] * SPEC.objects_per_class
        assert min(_slice_extents(label, LABELS["tube"])) >= SPEC.tube_length_range[0]


def test_classes_look_alike_within_a_slice():
    image, label = make_case(SyntheticSpec(), np.random.default_rng(0))
    tube, nodule = image[label == 1].mean(), image[label == 2].mean()
    assert abs(tube - nodule) < 0.2, "in-plane intensity must not give the class away"


def test_written_dataset_is_nnunet_raw_format(tmp_path):
    folder = write_dataset(tmp_path, 42, n_train=2, n_test=1, spec=SPEC, seed=0)
    assert folder.name == "Dataset042_Synthetic25D"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == LABELS and meta["numTraining"] == 2 and meta["file_ending"] == ".nii.gz"
    image = sitk.ReadImage(str(folder / "imagesTr" / "case_000_0000.nii.gz"))
    label = sitk.ReadImage(str(folder / "labelsTr" / "case_000.nii.gz"))
    assert image.GetSize() == (40, 40, 12) and label.GetSize() == (40, 40, 12)
    assert image.GetSpacing() == pytest.approx((0.8, 0.8, 4.0))
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == ["case_002_0000.nii.gz"]
    assert (folder / "labelsTs" / "case_002.nii.gz").exists()


def test_too_many_objects_for_the_plane_is_a_clear_error():
    with pytest.raises(ValueError, match="holds only"):
        make_case(SyntheticSpec(shape=(4, 16, 16), objects_per_class=5), np.random.default_rng(0))


def test_make_dataset_command_reports_a_plane_too_small_without_a_traceback(tmp_path):
    command = [sys.executable, "-m", "nnunet_25d.cli", "make-dataset", "--raw", str(tmp_path), "-d", "7",
               "--shape", "12", "40", "40", "--n-train", "1", "--n-test", "0"]
    failed = subprocess.run(command, capture_output=True, text=True)
    assert failed.returncode != 0 and "--objects-per-class" in failed.stderr and "Traceback" not in failed.stderr
    ok = subprocess.run(command + ["--objects-per-class", "2"], capture_output=True, text=True, check=True)
    assert (tmp_path / "Dataset007_Synthetic25D" / "imagesTr" / "case_000_0000.nii.gz").exists()
    assert ok.stdout.strip().endswith("Dataset007_Synthetic25D")


def test_mixed_thickness_keeps_field_of_view_and_object_extents_in_mm(tmp_path):
    spec = SyntheticSpec(shape=(20, 40, 40), objects_per_class=3, radius_range=(2, 4), z_spacings=(2.0, 5.0))
    folder = write_dataset(tmp_path, 977, n_train=2, n_test=0, spec=spec, seed=0)
    for case, spacing, depth, nodule_slices in (("case_000", 2.0, 40, 2), ("case_001", 5.0, 16, 1)):
        label_image = sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz"))
        label = sitk.GetArrayFromImage(label_image)
        assert label_image.GetSpacing()[2] == spacing and label.shape == (depth, 40, 40)
        assert _slice_extents(label, LABELS["nodule"]) == [nodule_slices] * 3
        assert min(_slice_extents(label, LABELS["tube"])) >= round(3 * 4.0 / spacing)
