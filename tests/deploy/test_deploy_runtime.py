"""The runtime end to end in-process, on hand-built ONNX graphs whose output is known without any predictor.

A 1x1 convolution over the slab's slices stacked as channels gives each voxel ``W @ slab + b``, whatever tile it is
computed in and however the tiles' Gaussian weights are spread, and in-plane mirroring does not change it: so the
logits a correct runtime writes are ``W @ slab + b`` of every voxel's zero-padded slab of the normalised image,
averaged over the folds.
"""
from __future__ import annotations

import gzip

import json
import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
import SimpleITK as sitk
from onnx import TensorProto, helper, numpy_helper

from nnunet_25d.cli import main
from nnunet_25d.deploy.model_description import write_model_description
from nnunet_25d.deploy.predictor import OnnxSlabPredictor
from nnunet_25d.files import is_complete

CHANNELS, SLAB, CLASSES = 2, 3, 3
SPACING_ZYX = (3.0, 0.8, 0.8)


def linear_slab_graph(path: Path, weights: np.ndarray, bias: np.ndarray) -> None:
    """(N, C, S, h, w) -> (N, K, h, w): channel s*C + c of the stacked slab (the plugin's SlabAsChannels order)."""
    nodes = [helper.make_node("Conv", ["slabs", "W", "b"], ["deep"]),  # kernel (S, 1, 1): one output slice
             helper.make_node("Squeeze", ["deep", "slice_axis"], ["logits"])]
    kernel = weights.reshape(CLASSES, SLAB, CHANNELS).transpose(0, 2, 1)[..., None, None]  # (K, C, S, 1, 1)
    graph = helper.make_graph(
        nodes, "linear_slab",
        [helper.make_tensor_value_info("slabs", TensorProto.FLOAT, ["n", CHANNELS, SLAB, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", CLASSES, "h", "w"])],
        [numpy_helper.from_array(np.array([2], dtype=np.int64), "slice_axis"),
         numpy_helper.from_array(kernel.astype(np.float32), "W"),
         numpy_helper.from_array(bias.astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def folds_weights(n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [(rng.normal(size=(CLASSES, CHANNELS * SLAB)), rng.normal(size=CLASSES)) for _ in range(n_folds)]


def model_folder(folder: Path, folds: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    folder.mkdir()
    for fold, (weights, bias) in enumerate(folds):
        linear_slab_graph(folder / f"fold_{fold}.onnx", weights, bias)
    no_resampling = {"order": 3, "order_z": 0, "force_separate_z": None}
    write_model_description(folder, {
        "folds": [{"fold": f, "file": f"fold_{f}.onnx"} for f in range(len(folds))],
        "input_channels": CHANNELS, "channel_names": {"0": "MRI", "1": "MRI"}, "num_heads": CLASSES,
        "slab_size": SLAB, "slab_axis": 0, "tile": [16, 16], "step_size": 0.5, "gaussian_sigma_scale": 0.125,
        "mirror_axes": [1, 2], "spacing": list(SPACING_ZYX[1:]), "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "normalization": [{"name": "ZScoreNormalization", "use_mask_for_norm": False, "intensity_properties": {}}] * 2,
        "resampling": {"data": no_resampling, "probabilities": {**no_resampling, "order": 1}},
        "labels": {"background": 0, "a": 1, "b": 2}, "foreground_labels": [1, 2], "regions_class_order": None,
        "file_ending": ".nii.gz", "image_dimension": 3})
    return folder


def write_case(folder: Path, case: str, depth: int) -> np.ndarray:
    """Two channels, non-zero everywhere (no cropping), 40 x 37 in-plane (several 16 x 16 tiles)."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(depth)
    data = rng.normal(5, 2, size=(CHANNELS, depth, 40, 37)).astype(np.float32)
    for channel in range(CHANNELS):
        image = sitk.GetImageFromArray(data[channel])
        image.SetSpacing(SPACING_ZYX[::-1])
        image.SetOrigin((1.0, 2.0, 3.0))
        sitk.WriteImage(image, str(folder / f"{case}_{channel:04d}.nii.gz"))
    return data


def expected_logits(data: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    normalised = np.stack([(c - c.mean()) / c.std() for c in data])
    padded = np.pad(normalised, [(0, 0), (1, 1), (0, 0), (0, 0)])
    slabs = np.stack([padded[:, z:z + SLAB] for z in range(data.shape[1])], 1)  # (C, D, S, H, W)
    stacked = slabs.transpose(1, 2, 0, 3, 4).reshape(data.shape[1], SLAB * CHANNELS, *data.shape[2:])
    per_fold = [np.einsum("kj,djhw->kdhw", w, stacked) + b[:, None, None, None] for w, b in folds]
    return np.mean(per_fold, 0)


@pytest.mark.parametrize("depth", [1, 7])
def test_predictor_writes_the_folds_mean_on_the_input_grid(tmp_path, depth):
    folds = folds_weights(2)
    predictor = OnnxSlabPredictor(model_folder(tmp_path / "model", folds))
    data = write_case(tmp_path / "in", "case", depth)
    files = sorted((tmp_path / "in").glob("case_*.nii.gz"))
    written = predictor.predict_case(files, tmp_path / "out_case", save_probabilities=True)
    assert written == tmp_path / "out_case.nii.gz"
    logits = expected_logits(data, folds)
    shifted = np.exp(logits - logits.max(0))
    probabilities = shifted / shifted.sum(0)
    saved = np.load(tmp_path / "out_case.npz")["probabilities"]
    assert saved.shape == probabilities.shape and np.abs(saved - probabilities).max() < 5e-3
    labels = sitk.ReadImage(str(written))
    source = sitk.ReadImage(str(files[0]))
    assert labels.GetSpacing() == source.GetSpacing() and labels.GetOrigin() == source.GetOrigin() == (1, 2, 3)
    clear = np.sort(probabilities, 0)[-1] - np.sort(probabilities, 0)[-2] > 1e-2  # no near-ties
    assert np.array_equal(sitk.GetArrayFromImage(labels)[clear], probabilities.argmax(0)[clear])
    properties = pickle.loads((tmp_path / "out_case.pkl").read_bytes())
    assert properties["shape_before_cropping"] == (depth, 40, 37) and np.allclose(properties["spacing"], SPACING_ZYX)


def run_command(*args: str) -> None:
    main(["predict-onnx", *args, "--disable_progress_bar"])


def test_command_predicts_a_folder_and_continues(tmp_path, capsys):
    model = model_folder(tmp_path / "model", folds_weights(1))
    write_case(tmp_path / "in", "a", 3)
    write_case(tmp_path / "in", "b", 2)
    run_command("-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model))
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["a.nii.gz", "b.nii.gz"]
    kept = gzip.compress(b"kept")  # a complete file, told apart from a prediction
    (tmp_path / "out" / "a.nii.gz").write_bytes(kept)
    (tmp_path / "out" / "b.nii.gz").write_bytes(kept[:8])  # what a kill during the write would leave
    run_command("-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model), "--c")
    assert (tmp_path / "out" / "a.nii.gz").read_bytes() == kept, "--continue_prediction keeps complete outputs"
    assert is_complete(tmp_path / "out" / "b.nii.gz"), "... and redoes an incomplete one"
    run_command("-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model), "--c",
                "--save_probabilities")
    assert (tmp_path / "out" / "a.nii.gz").read_bytes() != kept, "... unless its probabilities are missing"
    assert (tmp_path / "out" / "b.npz").is_file()
    run_command("-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.nii.gz", "a.npz", "a.pkl", "b.nii.gz",
                                                                   "b.npz", "b.pkl"]


@pytest.mark.parametrize("args, message", [
    (["--providers", "NoSuchExecutionProvider"], "ONNX Runtime here has no NoSuchExecutionProvider"),
    (["--slices-per-forward", "0"], "--slices-per-forward must be at least 1"),
])
def test_command_errors_are_one_line(tmp_path, capsys, args, message):
    model = model_folder(tmp_path / "model", folds_weights(1))
    write_case(tmp_path / "in", "a", 2)
    with pytest.raises(SystemExit) as exit_info:
        run_command("-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model), *args)
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0] and error[0].startswith("nnunet25d predict-onnx: error:")


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_a_damaged_onnx_file_is_one_line_naming_it(tmp_path, capsys, damage):
    model = model_folder(tmp_path / "model", folds_weights(1))
    onnx = next(model.glob("*.onnx"))
    onnx.write_bytes(np.random.default_rng(0).bytes(500) if damage == "random" else onnx.read_bytes()[:200])
    write_case(tmp_path / "in", "a", 2)
    with pytest.raises(SystemExit) as exit_info:
        run_command("-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model))
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"ONNX Runtime cannot load {onnx}" in error[0] and "export the model again" in error[0]


def test_the_output_folder_may_not_be_the_input_folder(tmp_path, capsys):
    model = model_folder(tmp_path / "model", folds_weights(1))
    write_case(tmp_path / "in", "a", 2)
    with pytest.raises(SystemExit):
        run_command("-i", str(tmp_path / "in"), "-o", str(tmp_path / "in"), "-m", str(model))
    assert "is the input folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["a_0000.nii.gz", "a_0001.nii.gz"]  # nothing written


def test_tiles_per_case_counts_every_network_call(tmp_path):
    calls = []
    predictor = OnnxSlabPredictor(model_folder(tmp_path / "model", folds_weights(2)), use_mirroring=False,
                                  slices_per_forward=2, progress=lambda n: calls.append(n))
    assert predictor.windows[0].mirrors == []  # use_mirroring=False: no mirrored passes
    data = write_case(tmp_path / "in", "a", 5)
    predictor.logits(np.ascontiguousarray(data))
    # 3 chunks of <= 2 slices; 40 x 37 in 16 x 16 tiles at a step of at most 8: 4 x 4 tiles; 2 folds
    assert predictor.tiles_per_case(data.shape[1:]) == len(calls) == 3 * 4 * 4 * 2
    assert json.loads((tmp_path / "model" / "nnunet25d_model.json").read_text())["format"] == "nnunet25d-onnx"


def test_the_command_line_is_nnunets_and_reaches_the_predictor(tmp_path, monkeypatch):
    from nnunet_25d.cli import build_parser

    parse = build_parser("predict-onnx").parse_args
    args = parse(["predict-onnx", "-i", "in", "-o", "out", "-m", "model"])
    assert (args.step_size, args.slices_per_forward, args.disable_tta, args.continue_prediction,
            args.save_probabilities) == (None, 1, False, False, False)
    args = parse(["predict-onnx", "-i", "in", "-o", "out", "-m", "model", "-step_size", "0.25", "--disable_tta", "--c"])
    assert (args.step_size, args.disable_tta, args.continue_prediction) == (0.25, True, True)
    for missing in ("-i", "-o", "-m"):
        given = [a for flag in ("-i", "-o", "-m") if flag != missing for a in (flag, "x")]
        with pytest.raises(SystemExit):
            parse(["predict-onnx", *given])
    built = {}
    original = OnnxSlabPredictor.__init__

    def spy(self, *arguments, **keywords):
        built["arguments"] = arguments
        original(self, *arguments, **keywords)

    monkeypatch.setattr(OnnxSlabPredictor, "__init__", spy)
    model = model_folder(tmp_path / "model", folds_weights(1))
    write_case(tmp_path / "in", "a", 2)
    out = tmp_path / "new" / "deeper" / "out"  # made with its parents
    run_command("-i", str(tmp_path / "in"), "-o", str(out), "-m", str(model), "-step_size", "1", "--disable_tta",
                "--slices-per-forward", "3")
    assert built["arguments"][2:5] == (False, 1.0, 3)  # mirroring off, the step, the slices per call
    assert (out / "a.nii.gz").is_file()


def test_the_predictors_defaults_are_the_exported_ones(tmp_path):
    predictor = OnnxSlabPredictor(model_folder(tmp_path / "model", folds_weights(1)))
    window = predictor.windows[0]
    assert (window.step_size, window.slices_per_forward, len(window.mirrors)) == (0.5, 1, 3)  # 2 axes mirrored
    write_case(tmp_path / "in", "a", 2)
    predictor.predict_case(sorted((tmp_path / "in").glob("a_*.nii.gz")), tmp_path / "a")
    assert (tmp_path / "a.nii.gz").is_file() and not (tmp_path / "a.npz").exists()  # no probabilities unless asked
