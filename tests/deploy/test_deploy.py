"""`nnunet25d export` + `nnunet25d predict-onnx` give what `nnunet25d predict` gives, without torch or nnU-Net.

The reference is `nnunet25d predict` (nnU-Net's preprocessing and export around the exact slab sliding window) on
the same model folder and images: a trained tiny model (one channel, classes) on test images, a volume thinner
than the slab, a much deeper one and one that is resampled in-plane; and an untrained two-fold, two-channel
(CT + MRI normalisation), region-based model of the z-resampled trainer on images that are resampled along z.
`predict-onnx` runs with torch, nnU-Net and their libraries made unimportable.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from tests.conftest import TINY_ID, TINY_SPEC, TINY_TRAINER
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from tests.inference.test_exact_inference import CLASSES, SLAB_TRAINERS, VIEW_TRAINERS, built_network, random_volume

from nnunet_25d.deploy.predictor import OnnxSession
from nnunet_25d.deploy.sliding_window import SlabSlidingWindow
from nnunet_25d.deploy.onnx_graph import SlabNetwork2D, export_onnx
from nnunet_25d.inference.slab_predictor import nnUNetSlabPredictor
from nnunet_25d.datasets.synthetic import write_dataset
from nnunet_25d.trainers.registry import TRAINERS
from nnunet_25d.geometry.views import from_view, plane_axes, to_view

pytestmark = pytest.mark.integration
BLOCKED = ("torch", "nnunetv2", "dynamic_network_architectures", "batchgenerators", "batchgeneratorsv2",
           "acvl_utils", "monai", "segmentation_models_pytorch", "psutil")
WITHOUT_TORCH = f"""
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is blocked: the runtime must not need it")
sys.meta_path.insert(0, Blocked())
from nnunet_25d.cli import main
main(sys.argv[1:])
"""
REGIONS_ID = 978
REGIONS_TRAINER = "nnUNetTrainer25DResampled"
# Both predictors keep nnU-Net's float16 logits. Where ONNX Runtime's and torch's float32 results (~1e-6 apart)
# straddle a float16 rounding boundary, the stored logits differ by one float16 step (2^-10 relative): on those few
# voxels the probabilities differ by up to ~1e-3 (measured 1.2e-4 for logits of about 1), elsewhere not at all.
PROBABILITY_TOLERANCE, SHARE_WITHIN, FLOAT16_STEP_BOUND = 1e-4, 0.999, 2e-3


def assert_equal_up_to_float16_rounding(ours: np.ndarray, reference: np.ndarray, exact_share: float = 0.99) -> None:
    """Both predictors store logits in float16; where ONNX Runtime and torch differ in the last float32 bits a
    value may round to the neighbouring float16 (at most 2 float16 steps; all but ``1 - exact_share`` of the
    values identical)."""
    assert ours.shape == reference.shape
    ulp = np.spacing(np.float16(np.abs(reference).max())).astype(np.float32)
    difference = np.abs(ours.astype(np.float32) - reference.astype(np.float32))
    assert difference.max() <= 2 * ulp and np.mean(difference == 0) > exact_share, (difference.max(), ulp)


# the slab predictor's exactness does not depend on the 2D network; the export of each 2D network does
EXPORTED_TRAINERS = SLAB_TRAINERS + ["nnUNetTrainer25DRIUNet", "nnUNetTrainer25DPsiNet"] + VIEW_TRAINERS
# deeper graphs (RIU-Net's four-branch blocks, Ψ-Net's softmax attention) sum more float32 rounding differences
# between the runtimes: measured 97.8 % / 98.7 % of the float16 logits identical, every other one 1 float16 step off
EXACT_SHARE = {"nnUNetTrainer25DRIUNet": 0.97, "nnUNetTrainer25DPsiNet": 0.97}


@pytest.mark.parametrize("trainer_name", EXPORTED_TRAINERS)
def test_exported_network_in_the_numpy_window_equals_the_slab_predictor(nnunet, tiny_dataset, trainer_name,
                                                                         tmp_path):
    """Every slab-style trainer exports; the runtime's window over its ONNX graph gives the PyTorch slab predictor's
    logits (mirroring over every axis, the slab axis included) for a volume thinner than the slab and a deep one."""
    configuration = "3d_fullres" if trainer_name in VIEW_TRAINERS else "2d"
    network, plans_manager, configuration_manager = built_network(nnunet, tiny_dataset, trainer_name, configuration)
    axis, mirror_axes = network.slab_axis, (0, 1, 2)
    reference = nnUNetSlabPredictor(0.5, True, True, False, torch.device("cpu"), allow_tqdm=False)
    reference.manual_initialization(network, plans_manager, configuration_manager, None,
                                    json.loads((nnunet.preprocessed / tiny_dataset / "dataset.json").read_text()),
                                    "test", mirror_axes)
    tile = [configuration_manager.patch_size[a] for a in plane_axes(axis)]
    path = tmp_path / "network.onnx"
    export_onnx(SlabNetwork2D(network), torch.randn(2, 2, network.slab_size, *tile), path)
    window = SlabSlidingWindow(OnnxSession(path, ["CPUExecutionProvider"]), CLASSES, network.slab_size, tile,
                               mirror_axes=[to_view(axis).index(a) for a in mirror_axes])
    torch.manual_seed(1)
    for depth in (1, 13):
        volume = random_volume(configuration_manager, axis, depth)
        expected = reference.predict_sliding_window_return_logits(volume).numpy()
        view = volume.numpy().transpose(0, *[a + 1 for a in to_view(axis)])
        ours = window(np.ascontiguousarray(view)).transpose(0, *[a + 1 for a in from_view(axis)])
        assert ours.dtype == np.float16
        assert_equal_up_to_float16_rounding(ours, expected, EXACT_SHARE.get(trainer_name, 0.99))


def predict_onnx_without_torch(nnunet, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return nnunet.run(sys.executable, "-c", WITHOUT_TORCH, "predict-onnx", *args, "--disable_progress_bar",
                      check=check)


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def write_like(array: np.ndarray, reference: Path, path: Path, spacing: tuple[float, ...] | None = None) -> None:
    image = sitk.GetImageFromArray(array)
    source = sitk.ReadImage(str(reference))
    image.SetSpacing(spacing or source.GetSpacing())
    if image.GetDimension() == source.GetDimension():
        image.SetOrigin(source.GetOrigin())
        image.SetDirection(source.GetDirection())
    sitk.WriteImage(image, str(path))


def tiny_inputs(nnunet, dataset: str, folder: Path) -> Path:
    """The test images, a 2-slice volume (thinner than the slab), an 80-slice one and one at 0.7 mm in-plane."""
    folder.mkdir()
    tests = sorted((nnunet.raw / dataset / "imagesTs").glob("*_0000.nii.gz"))
    for path in tests:
        shutil.copy(path, folder)
    volume = read(tests[0])
    write_like(volume[:2], tests[0], folder / "thin_0000.nii.gz")
    write_like(np.concatenate([volume] * 8), tests[0], folder / "deep_0000.nii.gz")
    spacing = sitk.ReadImage(str(tests[0])).GetSpacing()
    write_like(volume, tests[0], folder / "finer_0000.nii.gz", (0.7, 0.7, spacing[2]))
    return folder


def assert_same_predictions(onnx: Path, torch_output: Path, cases: list[str]) -> None:
    for case in cases:
        labels = read(onnx / f"{case}.nii.gz")
        assert np.array_equal(labels, read(torch_output / f"{case}.nii.gz")), case
        assert len(np.unique(labels)) > 1, f"{case}: a model that predicts nothing proves nothing"
        ours = np.load(onnx / f"{case}.npz")["probabilities"]
        reference = np.load(torch_output / f"{case}.npz")["probabilities"]
        assert ours.shape == reference.shape and ours.dtype == reference.dtype, case
        difference = np.abs(ours - reference)
        within = np.mean(difference <= PROBABILITY_TOLERANCE)
        assert within >= SHARE_WITHIN and difference.max() <= FLOAT16_STEP_BOUND, (case, within, difference.max())
        source = sitk.ReadImage(str(torch_output / f"{case}.nii.gz"))
        written = sitk.ReadImage(str(onnx / f"{case}.nii.gz"))
        assert written.GetSpacing() == source.GetSpacing() and written.GetOrigin() == source.GetOrigin()


def export(nnunet, dataset_id: int, trainer: str, folds: list[str], output: Path) -> str:
    return nnunet.run("nnunet25d", "export", "-d", str(dataset_id), "-c", "2d", "-tr", trainer, "-f", *folds,
                      "-o", str(output)).stdout


def predict_torch(nnunet, dataset_id: int, trainer: str, folds: list[str], inputs: Path, output: Path) -> None:
    nnunet.run("nnunet25d", "predict", "-i", str(inputs), "-o", str(output), "-d", str(dataset_id), "-c", "2d",
               "-tr", trainer, "-f", *folds, "-device", "cpu", "--save_probabilities", "-npp", "1", "-nps", "1",
               "--disable_progress_bar", "--backend", "torch")


def test_predict_onnx_reproduces_nnunet25d_predict(nnunet, tiny_dataset, trained_slab_model, tmp_path):
    printed = export(nnunet, TINY_ID, TINY_TRAINER, ["0"], tmp_path / "model")
    assert "opset 18" in printed and "(slices, 1, 3, 32, 32) float32 -> output 'logits': (slices, 3, 32, 32)" in printed
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["dataset.json", "fold_0.onnx",
                                                                      "nnunet25d_model.json", "plans.json"], \
        "one self-contained file per fold (no external weights) beside the description and nnU-Net's files"
    inputs = tiny_inputs(nnunet, tiny_dataset, tmp_path / "in")
    predict_onnx_without_torch(nnunet, "-i", str(inputs), "-o", str(tmp_path / "onnx"), "-m", str(tmp_path / "model"),
                               "--save_probabilities")
    predict_torch(nnunet, TINY_ID, TINY_TRAINER, ["0"], inputs, tmp_path / "torch")
    cases = sorted(p.name[:-len("_0000.nii.gz")] for p in inputs.iterdir())
    assert_same_predictions(tmp_path / "onnx", tmp_path / "torch", cases)
    assert read(tmp_path / "onnx" / "deep.nii.gz").shape[0] == 80
    reference = tmp_path / "reference"  # nnunet25d predict's labels, equal to predict-onnx's (asserted above)
    reference.mkdir()
    for case in cases:
        shutil.copy(tmp_path / "torch" / f"{case}.nii.gz", reference)
    onnx = tmp_path / "onnx"
    nnunet.run("nnUNetv2_evaluate_folder", str(reference), str(onnx), "-djfile", str(onnx / "dataset.json"),
               "-pfile", str(onnx / "plans.json"), "-np", "1")
    assert json.loads((onnx / "summary.json").read_text())["foreground_mean"]["Dice"] == 1.0


MIRROR_AXES = {("nnUNetTrainer", "2d"): (0, 1), ("nnUNetTrainer", "3d_fullres"): (0, 1, 2)}


def fabricated_model(nnunet, dataset: str, trainer_name: str, folds: list[int], configuration_name: str = "2d"
                     ) -> Path:
    """A model folder as nnUNetv2_train writes it, with freshly initialised weights (one seed per fold): enough
    for a test of equality between two predictors."""
    trainer_class = TRAINERS.get(trainer_name, nnUNetTrainer)
    plans = trainer_class.derive_plans(nnunet.plans(dataset), "2d") if hasattr(trainer_class, "derive_plans") \
        else nnunet.plans(dataset)
    dataset_json = json.loads((nnunet.preprocessed / dataset / "dataset.json").read_text())
    folder = nnunet.model_folder(dataset, trainer_name, configuration_name)
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(plans)
    configuration = plans_manager.get_configuration(configuration_name)
    channels = determine_num_input_channels(plans_manager, configuration, dataset_json)
    heads = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    for fold in folds:
        torch.manual_seed(fold)
        network = trainer_class.build_network_architecture(plans_manager, configuration, channels, heads, False)
        (folder / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        torch.save({"network_weights": network.state_dict(), "trainer_name": trainer_name,
                    "init_args": {"plans": plans, "configuration": configuration_name, "fold": fold,
                                  "dataset_json": dataset_json},
                    "inference_allowed_mirroring_axes": MIRROR_AXES.get((trainer_name, configuration_name), (1, 2))}, folder / f"fold_{fold}" / "checkpoint_final.pth")
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder


@pytest.fixture(scope="module")
def regions_dataset(nnunet) -> str:
    """Two channels (CT, MRI), regions (tube or nodule, nodule), planned for 2d and 3d_fullres."""
    folder = write_dataset(nnunet.raw, REGIONS_ID, name="Regions25D", n_train=4, n_test=2, spec=TINY_SPEC, seed=3)
    for split in ("imagesTr", "imagesTs"):
        for path in sorted((folder / split).glob("*_0000.nii.gz")):
            image = read(path)
            write_like((image * 300 + 40).astype(np.float32), path, path)
            write_like(np.abs(image).astype(np.float32) ** 0.5, path, path.with_name(path.name.replace("_0000",
                                                                                                        "_0001")))
    description = json.loads((folder / "dataset.json").read_text())
    description.update(channel_names={"0": "CT", "1": "MRI"}, regions_class_order=[1, 2],
                       labels={"background": 0, "tube_or_nodule": [1, 2], "nodule": 2})
    (folder / "dataset.json").write_text(json.dumps(description, indent=2))
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", str(REGIONS_ID), "-c", "2d", "3d_fullres", "-np", "1")
    return folder.name


def test_two_folds_two_channels_regions_and_resampling_along_z(nnunet, regions_dataset, tmp_path):
    fabricated_model(nnunet, regions_dataset, REGIONS_TRAINER, [0, 1])
    export(nnunet, REGIONS_ID, REGIONS_TRAINER, ["0", "1"], tmp_path / "model")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in sorted((nnunet.raw / regions_dataset / "imagesTs").glob("*.nii.gz")):
        spacing = sitk.ReadImage(str(path)).GetSpacing()
        write_like(read(path), path, inputs / path.name, (*spacing[:2], spacing[2] / 2))  # resampled along z
    predict_onnx_without_torch(nnunet, "-i", str(inputs), "-o", str(tmp_path / "onnx"), "-m", str(tmp_path / "model"),
                               "--save_probabilities")
    predict_torch(nnunet, REGIONS_ID, REGIONS_TRAINER, ["0", "1"], inputs, tmp_path / "torch")
    cases = sorted({p.name[:-len("_0000.nii.gz")] for p in inputs.glob("*_0000.nii.gz")})
    assert_same_predictions(tmp_path / "onnx", tmp_path / "torch", cases)
    model = json.loads((tmp_path / "model" / "nnunet25d_model.json").read_text())
    assert model["regions_class_order"] == [1, 2] and [n["name"] for n in model["normalization"]] == [
        "CTNormalization", "ZScoreNormalization"]
    assert len(model["spacing"]) == 3, "the z-resampled trainer's 2d plans carry a slice spacing"


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_predict_onnx_bad_input_is_one_clear_line(nnunet, tiny_dataset, trained_slab_model, tmp_path):
    export(nnunet, TINY_ID, TINY_TRAINER, ["0"], tmp_path / "model")
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = sorted((nnunet.raw / tiny_dataset / "imagesTs").glob("*_0000.nii.gz"))[0]
    shutil.copy(source, inputs / "case_0000.nii.gz")

    no_json = tmp_path / "not_a_model"
    no_json.mkdir()
    result = predict_onnx_without_torch(nnunet, "-i", str(inputs), "-o", str(tmp_path / "o1"), "-m", str(no_json),
                                        check=False)
    assert_one_line_error(result, "nnunet25d_model.json", "nnunet25d export")

    shutil.copy(source, inputs / "case_0001.nii.gz")
    result = predict_onnx_without_torch(nnunet, "-i", str(inputs), "-o", str(tmp_path / "o2"), "-m",
                                        str(tmp_path / "model"), check=False)
    assert_one_line_error(result, "case_0000.nii.gz, case_0001.nii.gz", "takes 1 channel")

    (inputs / "case_0001.nii.gz").unlink()
    (inputs / "case_0000.nii.gz").unlink()
    write_like(read(source)[0], source, inputs / "flat_0000.nii.gz", (0.8, 0.8))
    result = predict_onnx_without_torch(nnunet, "-i", str(inputs), "-o", str(tmp_path / "o3"), "-m",
                                        str(tmp_path / "model"), check=False)
    assert_one_line_error(result, "flat_0000.nii.gz is a 2D image", "trained on 3D")


def test_export_refuses_what_the_runtime_cannot_run(nnunet, tiny_dataset, trained_slab_model, tmp_path):
    fabricated_model(nnunet, tiny_dataset, "nnUNetTrainer", [0], "3d_fullres")
    result = nnunet.run("nnunet25d", "export", "-d", str(TINY_ID), "-c", "3d_fullres", "-tr", "nnUNetTrainer", "-f",
                        "0", "-o", str(tmp_path / "m1"), check=False)
    assert_one_line_error(result, "neither a slab network nor a 2D network", "nnunet25d predict --backend torch")
    result = nnunet.run("nnunet25d", "export", "-d", str(TINY_ID), "-c", "2d", "-tr", TINY_TRAINER, "-f", "0", "3",
                        "-o", str(tmp_path / "m2"), check=False)
    assert_one_line_error(result, "fold(s) 3", "-f 0")
    assert not (tmp_path / "m2").exists()


def test_nnunet_2d_runs_on_the_same_engine_as_the_slab_models(nnunet, tiny_dataset, tmp_path):
    """nnU-Net's own 2d model as a slab model of one slice: exported, predicted by ONNX Runtime as by nnU-Net's own
    predictor, so that an engine's speed-up is never read as 2.5D's."""
    fabricated_model(nnunet, tiny_dataset, "nnUNetTrainer", [0])
    export(nnunet, TINY_ID, "nnUNetTrainer", ["0"], tmp_path / "model")
    inputs = tiny_inputs(nnunet, tiny_dataset, tmp_path / "in")
    predict_onnx_without_torch(nnunet, "-i", str(inputs), "-o", str(tmp_path / "onnx"), "-m", str(tmp_path / "model"),
                               "--save_probabilities")
    nnunet.run("nnUNetv2_predict", "-i", str(inputs), "-o", str(tmp_path / "stock"), "-d", str(TINY_ID), "-c", "2d",
               "-tr", "nnUNetTrainer", "-f", "0", "-device", "cpu", "--save_probabilities", "-npp", "1", "-nps", "1")
    for case in sorted({p.name[:-len("_0000.nii.gz")] for p in inputs.glob("*_0000.nii.gz")}):
        labels = read(tmp_path / "onnx" / f"{case}.nii.gz")
        # random weights leave near-ties, which float16 rounding may break either way
        assert np.mean(labels == read(tmp_path / "stock" / f"{case}.nii.gz")) >= 0.999 and len(np.unique(labels)) > 1
        ours, stock = (np.load(tmp_path / folder / f"{case}.npz")["probabilities"] for folder in ("onnx", "stock"))
        # nnU-Net 2d sums its tiles in float16 where the runtime sums in float32: its own rounding, up to ~0.05 logit
        # at tile corners (tests/inference/test_exact_inference.py), is up to ~0.0125 in probability (slope <= 1/4)
        assert np.abs(ours - stock).max() <= 0.0125, case
    model = json.loads((tmp_path / "model" / "nnunet25d_model.json").read_text())
    assert model["slab_size"] == 1 and model["mirror_axes"] == [1, 2]
