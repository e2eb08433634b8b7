"""The deployment runtime's pieces equal nnU-Net's own functions, bit for bit where nnU-Net computes in numpy."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import get_bbox_from_mask
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from nnunetv2.preprocessing.cropping.cropping import create_nonzero_mask
from nnunetv2.preprocessing.normalization.default_normalization_schemes import (CTNormalization, NoNormalization,
                                                                                RescaleTo01Normalization,
                                                                                RGBTo01Normalization,
                                                                                ZScoreNormalization)
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from nnunet_25d.datasets.cases import cases_in
from nnunet_25d.deploy.model_description import (DESCRIPTION_FILE, REQUIRED_KEYS, ModelDescriptionError,
                                                 read_model_description, write_model_description)
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
    ("CTNormalization", CTNormalization, False), ("RescaleTo01Normalization", RescaleTo01Normalization, False),
    ("RGBTo01Normalization", RGBTo01Normalization, False), ("NoNormalization", NoNormalization, False)])
def test_normalisation_is_nnunets_bit_for_bit(name, normaliser, use_mask):
    data = holed_volume()[:, 1:5, 2:9, 3:12].copy() * 50
    if name == "RGBTo01Normalization":
        data = np.abs(data).clip(0, 255)
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
    with pytest.raises(ImageError, match=r"case b has channel file.s. b_0000.nii.gz; the model takes 2 channel.s.: "
                                         r"b_0000.nii.gz, b_0001.nii.gz$"):
        cases_in(tmp_path, ".nii.gz", 2)
    with pytest.raises(ImageError, match=r"case a has channel file.s. a_0000.nii.gz, a_0001.nii.gz; the model takes 1"):
        cases_in(tmp_path, ".nii.gz", 1)
    with pytest.raises(ImageError, match=r"input folder \S+missing does not exist"):
        cases_in(tmp_path / "missing", ".nii.gz", 1)
    with pytest.raises(ImageError, match="no images named CASE_0000.nrrd"):
        cases_in(tmp_path, ".nrrd", 1)
    (tmp_path / "b_0001.nii.gz").write_text("")
    (tmp_path / "c_0000.nii").write_text("")  # another ending: nnU-Net would leave the case out silently
    with pytest.raises(ImageError, match=r"1 image file.s. in \S+ are not named CASE_XXXX.nii.gz.*would be left out: "
                                         r"c_0000.nii \(convert or rename them\)"):
        cases_in(tmp_path, ".nii.gz", 2)


def test_model_description_errors_name_the_fix(tmp_path):
    with pytest.raises(ModelDescriptionError, match="no model folder"):
        read_model_description(tmp_path / "missing")
    with pytest.raises(ModelDescriptionError, match=f"no {DESCRIPTION_FILE}.*nnunet25d export"):
        read_model_description(tmp_path)
    (tmp_path / DESCRIPTION_FILE).write_text("{")
    with pytest.raises(ModelDescriptionError, match="not valid JSON"):
        read_model_description(tmp_path)
    (tmp_path / DESCRIPTION_FILE).write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(ModelDescriptionError, match="not a nnunet25d-onnx v1 description .format 'other', version 1."):
        read_model_description(tmp_path)
    write_model_description(tmp_path, {"folds": [{"fold": 0, "file": "fold_0.onnx"}]})
    with pytest.raises(ModelDescriptionError, match="lacks input_channels, num_heads, slab_size"):
        read_model_description(tmp_path)
    complete = {key: None for key in REQUIRED_KEYS}
    write_model_description(tmp_path, {**complete, "folds": [{"fold": 0, "file": "fold_0.onnx"},
                                                             {"fold": 1, "file": "fold_1.onnx"}]})
    with pytest.raises(ModelDescriptionError, match=r"lacks fold_0.onnx, fold_1.onnx named in nnunet25d_model.json"):
        read_model_description(tmp_path)
    (tmp_path / "fold_1.onnx").write_bytes(b"")
    with pytest.raises(ModelDescriptionError, match=r"lacks fold_0.onnx named in nnunet25d_model.json"):
        read_model_description(tmp_path)
    (tmp_path / "fold_0.onnx").write_bytes(b"")
    assert read_model_description(tmp_path)["version"] == 1


# --- the runtime's pipeline against nnU-Net's on a hand-written plan (transposed, two channels, resampled) ---

TARGET_SPACING = [0.6, 0.75]  # 2d: in-plane only (after transpose_forward), the slice spacing stays the case's
CASE_SPACING = [3.0, 0.8, 0.7]  # z, y, x as nnU-Net reads them
TRANSPOSE_FORWARD, TRANSPOSE_BACKWARD = [0, 2, 1], [0, 2, 1]


def hand_plans(spacing: list[float] | None = None) -> dict:
    """Plans of a 2-channel dataset whose one configuration (named 2d) has ``spacing`` (default: 2d's in-plane
    :data:`TARGET_SPACING`; three values: a 3d_fullres-like target that resamples the slices too)."""
    spacing = spacing or TARGET_SPACING
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    return {"dataset_name": "Dataset999_Hand", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
            "transpose_forward": TRANSPOSE_FORWARD, "transpose_backward": TRANSPOSE_BACKWARD,
            "original_median_spacing_after_transp": CASE_SPACING, "original_median_shape_after_transp": [6, 20, 22],
            "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": PROPERTIES, "1": PROPERTIES},
            "configurations": {"2d": {
                "data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
                "patch_size": [16, 16], "median_image_size_in_voxels": [20, 22], "spacing": spacing,
                "normalization_schemes": ["CTNormalization", "ZScoreNormalization"],
                "use_mask_for_norm": [False, True],
                "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resampling,
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
                "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []},
                "batch_dice": True}}}


def hand_model(regions: bool, spacing: list[float] | None = None) -> dict:
    """What `nnunet25d export` writes for :func:`hand_plans` (the keys the runtime reads)."""
    configuration = hand_plans(spacing)["configurations"]["2d"]
    kwargs = {key: value for key, value in configuration["resampling_fn_data_kwargs"].items() if key != "is_seg"}
    return {"input_channels": 2, "file_ending": ".nii.gz", "spacing": configuration["spacing"],
            "transpose_forward": TRANSPOSE_FORWARD, "transpose_backward": TRANSPOSE_BACKWARD,
            "normalization": [{"name": n, "use_mask_for_norm": m, "intensity_properties": PROPERTIES}
                              for n, m in zip(configuration["normalization_schemes"],
                                              configuration["use_mask_for_norm"])],
            "resampling": {"data": kwargs, "probabilities": {**kwargs, "order": 1}},
            "regions_class_order": [1, 2] if regions else None, "foreground_labels": [1, 2]}


def hand_case() -> tuple[np.ndarray, dict]:
    """(2, Z, Y, X) channels with zeros around the body (cropped) and a hole in it (filled)."""
    rng = np.random.default_rng(2)
    data = np.zeros((2, 6, 20, 22), dtype=np.float32)
    data[:, 1:5, 3:17, 2:19] = rng.normal(40, 30, size=(2, 4, 14, 17))
    data[:, 2, 8:10, 8:10] = 0
    data[:, 1:5, 3:6, 2:5] = 0  # a corner outside the body but inside its box: use_mask_for_norm leaves it out
    return data, {"spacing": CASE_SPACING, "sitk_stuff": {}}


@pytest.mark.parametrize("spacing", [TARGET_SPACING, [2.0, *TARGET_SPACING]])
def test_preprocessing_is_nnunets_bit_for_bit(spacing):
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_25d.deploy.preprocessing import CaseGeometry, preprocess

    plans = PlansManager(hand_plans(spacing))
    data, properties = hand_case()
    expected, *_ = DefaultPreprocessor(verbose=False).run_case_npy(
        data.copy(), None, properties, plans, plans.get_configuration("2d"), {"channel_names": {"0": "CT",
                                                                                                  "1": "MRI"}})
    geometry = CaseGeometry((), (), (), CASE_SPACING)
    ours = preprocess(data.copy(), geometry, hand_model(False, spacing))
    assert ours.shape == expected.shape and np.array_equal(ours, expected)
    assert expected.shape[2:] != tuple(properties["shape_after_cropping_and_before_resampling"][1:]), "resampled"
    slices_resampled = expected.shape[1] != properties["shape_after_cropping_and_before_resampling"][0]
    assert slices_resampled is (len(spacing) == 3)  # 2d keeps each case's slice spacing
    assert geometry.bbox == properties["bbox_used_for_cropping"]
    assert geometry.shape_before_cropping == tuple(properties["shape_before_cropping"])
    assert geometry.shape_after_cropping == tuple(properties["shape_after_cropping_and_before_resampling"])
    with pytest.raises(ImageError, match=r"the case has 1 channel.s., the model takes 2 \(CT, MRI\)"):
        preprocess(data[:1].copy(), geometry, {**hand_model(False, spacing), "channel_names": {"0": "CT", "1": "MRI"}})


@pytest.mark.parametrize("regions", [False, True])
@pytest.mark.parametrize("with_probabilities", [False, True])
def test_segmentation_and_probabilities_on_the_input_grid_are_nnunets(regions, with_probabilities):
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_25d.deploy.postprocessing import final_segmentation
    from nnunet_25d.deploy.preprocessing import CaseGeometry

    plans = PlansManager(hand_plans())
    labels = {"background": 0, "a": [1, 2], "b": 2} if regions else {"background": 0, "a": 1, "b": 2}
    dataset_json = {"labels": labels, "regions_class_order": [1, 2] if regions else None}
    bbox = [[1, 5], [2, 19], [3, 17]]  # transposed layout
    properties = {"spacing": CASE_SPACING, "shape_before_cropping": (6, 22, 20), "bbox_used_for_cropping": bbox,
                  "shape_after_cropping_and_before_resampling": (4, 17, 14)}
    logits = (np.random.default_rng(3).normal(size=(2 if regions else 3, 4, 23, 16)) * 3).astype(np.float16)
    expected = convert_predicted_logits_to_segmentation_with_correct_shape(
        torch.from_numpy(logits.copy()), plans, plans.get_configuration("2d"),
        plans.get_label_manager(dataset_json), properties, with_probabilities)
    geometry = CaseGeometry((), (), (), CASE_SPACING, (6, 22, 20), bbox, (4, 17, 14))
    segmentation, probabilities = final_segmentation(logits, geometry, hand_model(regions), with_probabilities)
    expected_segmentation = expected[0] if with_probabilities else expected
    assert segmentation.dtype == expected_segmentation.dtype and segmentation.shape == (6, 20, 22)
    assert np.array_equal(segmentation, expected_segmentation)
    assert len(np.unique(segmentation)) == 3
    if with_probabilities:
        assert probabilities.shape == expected[1].shape and np.abs(probabilities - expected[1]).max() < 1e-6
    else:
        assert probabilities is None


def small_slab_network(slab_size: int, axis: int):
    from nnunet_25d.architectures.slab_network import SlabNetwork

    torch.manual_seed(0)
    return SlabNetwork(2, 3, slab_size, slab_axis=axis, n_stages=2, features_per_stage=[4, 8],
                       conv_op=torch.nn.Conv2d, kernel_sizes=[[3, 3], [3, 3]], strides=[[1, 1], [2, 2]], n_conv_per_stage=1,
                       n_conv_per_stage_decoder=1, conv_bias=True, norm_op=torch.nn.InstanceNorm2d,
                       norm_op_kwargs={"affine": True}, nonlin=torch.nn.LeakyReLU).eval()


@pytest.mark.parametrize("axis, mirror_axes, depth, slices_per_forward", [
    (0, (1, 2), 1, 1), (0, (0, 1, 2), 5, 1), (0, (), 7, 3), (1, (0, 2), 4, 2), (2, (2,), 6, 1)])
def test_numpy_window_is_the_torch_slab_predictors(axis, mirror_axes, depth, slices_per_forward):
    """The same 2D network behind both windows: the numpy window computes the PyTorch predictor's logits."""
    from types import SimpleNamespace

    from nnunet_25d.deploy.sliding_window import SlabSlidingWindow
    from nnunet_25d.deploy.onnx_graph import SlabNetwork2D
    from nnunet_25d.geometry.views import from_view, to_view

    network = small_slab_network(5, axis)
    patch = [8, 16, 16]
    patch[axis] = 1
    predictor = slab_predictor.nnUNetSlabPredictor(0.5, True, bool(mirror_axes), False, torch.device("cpu"),
                                                   allow_tqdm=False, slices_per_forward=slices_per_forward)
    predictor.manual_initialization(network, SimpleNamespace(get_label_manager=lambda _: SimpleNamespace(
        num_segmentation_heads=3)), SimpleNamespace(patch_size=patch), None, {}, "t", mirror_axes)
    shape = [depth if a == axis else 24 + 5 * a for a in range(3)]  # two or three tiles in-plane
    volume = torch.randn(2, *shape)
    volume[0] = 0
    expected = predictor.predict_sliding_window_return_logits(volume).numpy()

    two_d = SlabNetwork2D(network)
    calls = []

    def numpy_network(slabs: np.ndarray) -> np.ndarray:
        calls.append(slabs.shape)
        with torch.no_grad():
            return two_d(torch.from_numpy(slabs)).numpy()

    tile = [patch[a] for a in range(3) if a != axis]
    window = SlabSlidingWindow(numpy_network, 3, 5, tile, 0.5, 1. / 8,
                               [to_view(axis).index(a) for a in mirror_axes], slices_per_forward)
    view = np.ascontiguousarray(volume.numpy().transpose(0, *[a + 1 for a in to_view(axis)]))
    ours = window(view).transpose(0, *[a + 1 for a in from_view(axis)])
    assert ours.dtype == np.float16 and ours.shape == expected.shape
    difference = np.abs(ours.astype(np.float32) - expected.astype(np.float32))
    assert np.mean(difference == 0) > 0.999 and difference.max() <= 2 * np.spacing(np.float16(np.abs(expected).max()))
    assert {c[0] for c in calls} <= set(range(1, slices_per_forward + 1)) and {c[1:] for c in calls} == {(2, 5, *tile)}


def test_the_runtime_knows_every_scheme_nnunets_planner_writes_by_its_class_name():
    """Plans store the normaliser's class name (``RGBTo01Normalization``, not the channel name ``rgb_to_0_1``)."""
    from nnunetv2.preprocessing.normalization.map_channel_name_to_normalization import \
        channel_name_to_normalization_mapping

    from nnunet_25d.deploy.model_description import NORMALIZATION_SCHEMES

    planned = {cls.__name__ for cls in channel_name_to_normalization_mapping.values()}
    assert set(NORMALIZATION_SCHEMES) == planned
    for name in planned:  # each runs (none falls through to the refusal)
        normalise_channel(np.full((2, 2, 2), 3.0, np.float32), np.ones((2, 2, 2), bool),
                          {"name": name, "use_mask_for_norm": False, "intensity_properties": PROPERTIES})


@pytest.mark.parametrize("largest", [2, 254, 255, 300])
def test_segmentations_are_written_as_nnunets_writer_writes_them(tmp_path, largest):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from nnunet_25d.deploy.postprocessing import write_segmentation
    from nnunet_25d.deploy.preprocessing import CaseGeometry

    segmentation = np.zeros((3, 5, 4), dtype=np.int64)
    segmentation[1, 2:4, 1:3] = largest
    spacing, origin, direction = (0.7, 0.8, 3.0), (1.0, -2.0, 5.0), (1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)
    write_segmentation(segmentation, CaseGeometry(spacing, origin, direction, [3.0, 0.8, 0.7]), tmp_path / "ours.nii.gz")
    SimpleITKIO().write_seg(segmentation, str(tmp_path / "theirs.nii.gz"),
                            {"sitk_stuff": {"spacing": spacing, "origin": origin, "direction": direction},
                             "spacing": [3.0, 0.8, 0.7]})
    ours, theirs = (sitk.ReadImage(str(tmp_path / f"{who}.nii.gz")) for who in ("ours", "theirs"))
    assert ours.GetPixelIDTypeAsString() == theirs.GetPixelIDTypeAsString()
    assert (ours.GetSpacing(), ours.GetOrigin(), ours.GetDirection()) == \
        (theirs.GetSpacing(), theirs.GetOrigin(), theirs.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))
    assert (tmp_path / "ours.nii.gz").read_bytes()[:2] == b"\x1f\x8b"  # compressed, as nnU-Net writes it


def test_the_properties_beside_probabilities_are_nnunets(tmp_path):
    """What ``CASE.pkl`` holds is what nnU-Net's own preprocessing of the same files returns."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_25d.deploy.preprocessing import preprocess, read_case

    data, _ = hand_case()
    files = []
    for channel in range(2):
        image = sitk.GetImageFromArray(data[channel])
        image.SetSpacing(CASE_SPACING[::-1])
        image.SetOrigin((4.0, 5.0, 6.0))
        files.append(tmp_path / f"case_{channel:04d}.nii.gz")
        sitk.WriteImage(image, str(files[-1]))
    plans = PlansManager(hand_plans())
    _, _, expected = DefaultPreprocessor(verbose=False).run_case(
        [str(f) for f in files], None, plans, plans.get_configuration("2d"), {"channel_names": {"0": "CT", "1": "MRI"}})
    image, geometry = read_case(files)
    assert image.dtype == np.float32
    preprocess(image, geometry, hand_model(False))
    ours = geometry.as_nnunet_properties()
    for key in ("spacing", "shape_before_cropping", "bbox_used_for_cropping",
                "shape_after_cropping_and_before_resampling"):
        assert np.array_equal(np.asarray(ours[key]), np.asarray(expected[key])), key
    assert ours["sitk_stuff"] == {key: expected["sitk_stuff"][key] for key in ("spacing", "origin", "direction")}


def test_images_the_model_cannot_take_are_named(tmp_path):
    from nnunet_25d.deploy.preprocessing import read_case

    flat = tmp_path / "flat_0000.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5), np.float32)), str(flat))
    with pytest.raises(ImageError, match=r"flat_0000.nii.gz is a 2D image with 1 component.s. per voxel; the model "
                                         r"was trained on 3D"):
        read_case([flat])
    assert read_case([flat], image_dimension=2)[0].shape == (1, 4, 5)
    rgb = tmp_path / "rgb_0000.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 4, 5, 3), np.uint8), isVector=True), str(rgb))
    with pytest.raises(ImageError, match="3D image with 3 component"):
        read_case([rgb])
    first, second = tmp_path / "c_0000.nii.gz", tmp_path / "c_0001.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 4, 5), np.int16)), str(first))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 4, 6), np.int16)), str(second))
    with pytest.raises(ImageError, match=r"c_0001.nii.gz has size \(6, 4, 2\) .* but \S+c_0000.nii.gz has \(5, 4, 2\)"):
        read_case([first, second])
    other_spacing = sitk.GetImageFromArray(np.zeros((2, 4, 5), np.int16))
    other_spacing.SetSpacing((1.0, 1.0, 2.5))
    sitk.WriteImage(other_spacing, str(second))
    with pytest.raises(ImageError, match="must share one grid"):
        read_case([first, second])
