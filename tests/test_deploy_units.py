"""The deployment runtime's pieces equal nnU-Net's own functions, bit for bit where nnU-Net computes in numpy."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import get_bbox_from_mask
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from nnunetv2.preprocessing.cropping.cropping import create_nonzero_mask
from nnunetv2.preprocessing.normalization.default_normalization_schemes import (CTNormalization,
                                                                                RescaleTo01Normalization,
                                                                                ZScoreNormalization)
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from nnunet_25d.deploy.cases import cases_in
from nnunet_25d.deploy.model_description import (DESCRIPTION_FILE, ModelDescriptionError, read_model_description,
                                                 write_model_description)
from nnunet_25d.deploy.postprocessing import probabilities_of, segmentation_of
from nnunet_25d.deploy.preprocessing import ImageError, bounding_box, nonzero_mask, normalise_channel
from nnunet_25d.deploy.resampling import resample
from nnunet_25d.deploy.sliding_window import (chunk_with_context, mirror_combinations, pad_plane, tile_gaussian,
                                              tile_starts)
from nnunet_25d.inference import slab_predictor

RESAMPLING_CASES = [  # shape, spacing, new spacing, new shape, kwargs (the plans' defaults: force_separate_z None)
    ((2, 7, 20, 22), (4, .8, .8), (4, .5, .6), (7, 32, 29), dict(order=3, order_z=0)),  # in-plane only, separately
    ((1, 7, 20, 22), (4, .8, .8), (1.5, .8, .8), (19, 20, 22), dict(order=3, order_z=0)),  # along z, order 0
    ((1, 7, 20, 22), (1, .8, .9), (1.2, .8, .8), (6, 20, 25), dict(order=3, order_z=0)),  # near isotropic: 3D
    ((3, 9, 20, 22), (.8, 4, .8), (.8, 2, .8), (9, 40, 22), dict(order=1, order_z=1)),  # coarse axis 1, order_z 1
    ((1, 9, 20, 22), (4, 4, .8), (4, 4, .8), (9, 40, 22), dict(order=1, order_z=1)),  # two coarse axes: 3D
    ((1, 9, 20, 22), (4, .8, .8), (2, .8, .8), (18, 20, 22), dict(order=1, order_z=0, force_separate_z=False)),
    ((1, 9, 20, 22), (1, .8, .8), (1, .7, .8), (9, 23, 22), dict(order=1, order_z=0, force_separate_z=True)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape, spacing, new_spacing, new_shape, kwargs", RESAMPLING_CASES)
def test_resampling_is_nnunets_bit_for_bit(shape, spacing, new_spacing, new_shape, kwargs, dtype):
    kwargs = {"force_separate_z": None, **kwargs}
    data = np.random.default_rng(0).normal(size=shape).astype(dtype)
    expected = resample_data_or_seg_to_shape(data, new_shape, spacing, new_spacing, False, **kwargs)
    ours = resample(data, new_shape, spacing, new_spacing, **kwargs)
    assert ours.dtype == expected.dtype and np.array_equal(ours, expected)


def test_resampling_to_the_same_shape_returns_the_input():
    data = np.ones((1, 3, 4, 5), dtype=np.float16)
    assert resample(data, (3, 4, 5), (1, 1, 1), (1, 1, 1)) is data


@pytest.mark.parametrize("tile", [(32, 32), (40, 56), (7, 9)])
def test_tile_gaussian_is_nnunets(tile):
    expected = compute_gaussian(tile, 1. / 8, 10, torch.float32, torch.device("cpu")).numpy()
    assert np.array_equal(tile_gaussian(tile, 1. / 8), expected)


@pytest.mark.parametrize("step", [0.5, 0.25, 1.0, 0.7])
def test_tile_starts_are_nnunets(step):
    for size in range(16, 140, 7):
        for tile in (16, 32, 47):
            if size >= tile:
                assert tile_starts(size, tile, step) == compute_steps_for_sliding_window((size,), (tile,), step)[0]


@pytest.mark.parametrize("shape", [(2, 3, 20, 31), (1, 1, 32, 32), (1, 4, 40, 10)])
def test_plane_padding_is_nnunets(shape):
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    expected, undo_expected = pad_nd_image(torch.from_numpy(volume), [32, 32], "constant", {"value": 0}, True)
    ours, undo = pad_plane(volume, [32, 32])
    assert np.array_equal(ours, expected.numpy()) and np.array_equal(ours[:, :, undo[0], undo[1]], volume)
    assert undo == tuple(undo_expected[2:])


def test_chunks_are_the_torch_predictors():
    view = np.random.default_rng(0).normal(size=(2, 6, 4, 4)).astype(np.float32)
    for start, stop, width in [(0, 1, 1), (5, 6, 2), (0, 6, 3), (2, 4, 1)]:
        expected = slab_predictor.chunk_with_context(torch.from_numpy(view), start, stop, width).numpy()
        assert np.array_equal(chunk_with_context(view, start, stop, width), expected)


def test_mirror_combinations_are_nnunets_order():
    assert mirror_combinations([1, 2]) == [(1,), (2,), (1, 2)]
    assert mirror_combinations([]) == []
    assert len(mirror_combinations([0, 1, 2])) == 7


def holed_volume() -> np.ndarray:
    data = np.zeros((2, 6, 12, 14), dtype=np.float32)
    data[0, 1:5, 2:9, 3:12] = np.random.default_rng(0).normal(size=(4, 7, 9))
    data[0, 2:4, 4:6, 5:8] = 0  # a hole: filled
    data[1, 5, 10, 1] = 3  # the second channel's voxel extends the box
    return data


def test_nonzero_mask_and_box_are_nnunets():
    data = holed_volume()
    mask = nonzero_mask(data)
    assert np.array_equal(mask, create_nonzero_mask(data))
    assert bounding_box(mask) == get_bbox_from_mask(mask)
    empty = np.zeros((3, 4, 5), dtype=bool)
    assert bounding_box(empty) == get_bbox_from_mask(empty) == [[0, 3], [0, 4], [0, 5]]


PROPERTIES = {"mean": 40.0, "std": 12.0, "percentile_00_5": -20.0, "percentile_99_5": 90.0}


@pytest.mark.parametrize("name, normaliser, use_mask", [
    ("ZScoreNormalization", ZScoreNormalization, False), ("ZScoreNormalization", ZScoreNormalization, True),
    ("CTNormalization", CTNormalization, False), ("RescaleTo01Normalization", RescaleTo01Normalization, False)])
def test_normalisation_is_nnunets_bit_for_bit(name, normaliser, use_mask):
    data = holed_volume()[:, 1:5, 2:9, 3:12].copy() * 50
    mask = nonzero_mask(data)
    seg = np.where(mask, np.int8(0), np.int8(-1))
    expected = normaliser(use_mask, PROPERTIES).run(data[0].copy(), seg)
    ours = normalise_channel(data[0].copy(), mask, {"name": name, "use_mask_for_norm": use_mask,
                                                    "intensity_properties": PROPERTIES})
    assert np.array_equal(ours, expected)


def test_unknown_normalisation_is_refused():
    with pytest.raises(ImageError, match="MyNormalization"):
        normalise_channel(np.ones((2, 2, 2), np.float32), np.ones((2, 2, 2), bool),
                          {"name": "MyNormalization", "use_mask_for_norm": False, "intensity_properties": {}})


@pytest.mark.parametrize("regions", [False, True])
def test_probabilities_and_labels_are_nnunets(regions):
    labels = {"background": 0, "a": [1, 2], "b": 2} if regions else {"background": 0, "a": 1, "b": 2}
    manager = LabelManager(labels, [1, 2] if regions else None)
    logits = np.random.default_rng(0).normal(size=(manager.num_segmentation_heads, 3, 5, 6)).astype(np.float16) * 3
    model = {"regions_class_order": [1, 2] if regions else None}
    expected = manager.apply_inference_nonlin(logits).numpy()
    ours = probabilities_of(logits, model)
    assert np.abs(ours - expected).max() < 1e-6
    assert np.array_equal(segmentation_of(ours, model), manager.convert_probabilities_to_segmentation(expected))
    assert np.array_equal(segmentation_of(probabilities_of(logits, model) if regions else logits, model),
                          manager.convert_logits_to_segmentation(logits))


def test_cases_are_grouped_by_channel(tmp_path):
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "b_0001.nii.gz", "notes.txt"):
        (tmp_path / name).write_text("")
    cases = cases_in(tmp_path, ".nii.gz", 2)
    assert {c: [p.name for p in files] for c, files in cases.items()} == {
        "a": ["a_0000.nii.gz", "a_0001.nii.gz"], "b": ["b_0000.nii.gz", "b_0001.nii.gz"]}
    (tmp_path / "b_0001.nii.gz").unlink()
    with pytest.raises(ImageError, match="case b has channel file.s. b_0000.nii.gz; the model takes 2"):
        cases_in(tmp_path, ".nii.gz", 2)
    with pytest.raises(ImageError, match="no images named CASE_0000.nrrd"):
        cases_in(tmp_path, ".nrrd", 1)


def test_model_description_errors_name_the_fix(tmp_path):
    with pytest.raises(ModelDescriptionError, match="no model folder"):
        read_model_description(tmp_path / "missing")
    with pytest.raises(ModelDescriptionError, match=f"no {DESCRIPTION_FILE}.*nnunet25d export"):
        read_model_description(tmp_path)
    (tmp_path / DESCRIPTION_FILE).write_text("{")
    with pytest.raises(ModelDescriptionError, match="not valid JSON"):
        read_model_description(tmp_path)
    (tmp_path / DESCRIPTION_FILE).write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(ModelDescriptionError, match="not a nnunet25d-onnx v1"):
        read_model_description(tmp_path)
    write_model_description(tmp_path, {"folds": [{"fold": 0, "file": "fold_0.onnx"}]})
    with pytest.raises(ModelDescriptionError, match="lacks input_channels"):
        read_model_description(tmp_path)
