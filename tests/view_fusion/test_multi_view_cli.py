"""The documented multi-view path with nnU-Net's own commands: train the three views, fuse their cross-validation
(`nnunet25d ensemble-cv`), pick with nnUNetv2_find_best_configuration, fuse test predictions with nnUNetv2_ensemble,
postprocess with nnUNetv2_apply_postprocessing, evaluate with nnUNetv2_evaluate_folder."""
import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import TINY_SPEC

from nnunet_25d.datasets.synthetic import write_dataset

DATASET_ID = 976
DATASET = f"Dataset{DATASET_ID}_Synthetic25D"
VIEWS = [f"nnUNetTrainer25D{view}_2epochs_5iters" for view in ("Axial", "Coronal", "Sagittal")]


@pytest.fixture(scope="module")
def trained_views(nnunet) -> list[Path]:
    write_dataset(nnunet.raw, DATASET_ID, n_train=6, n_test=2, spec=TINY_SPEC, seed=7)
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", "1")
    for trainer in VIEWS:
        nnunet.run("nnUNetv2_train", str(DATASET_ID), "3d_fullres", "0", "-tr", trainer, "-device", "cpu", "--npz",
                   training=True)
    return [nnunet.model_folder(DATASET, trainer, "3d_fullres") for trainer in VIEWS]


def probabilities(npz: Path) -> np.ndarray:
    return np.load(npz)["probabilities"].astype(np.float64)


def test_cross_validation_fusion_of_three_views(nnunet, trained_views):
    models = [f"{trainer}:3d_fullres" for trainer in VIEWS]
    result = nnunet.run("nnunet25d", "ensemble-cv", "-d", str(DATASET_ID), "--models", *models, "-f", "0")
    folder = Path(result.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    assert (folder / "postprocessing.pkl").exists() and (folder / "postprocessing.json").exists()
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == 2  # fold 0's validation cases
    # the fused segmentation is the argmax of the averaged softmax of the three views (all in the data's layout)
    import SimpleITK as sitk

    for npz in (trained_views[0] / "fold_0" / "validation").glob("*.npz"):
        mean = np.mean([probabilities(view / "fold_0" / "validation" / npz.name) for view in trained_views], axis=0)
        fused = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / npz.name.replace(".npz", ".nii.gz"))))
        assert (mean.argmax(0) == fused).mean() > 0.999


def test_find_best_configuration_over_the_views(nnunet, trained_views):
    nnunet.run("nnUNetv2_find_best_configuration", str(DATASET_ID), "-c", "3d_fullres", "-tr", *VIEWS, "-f", "0",
               "-np", "1")
    information = json.loads((nnunet.results / DATASET / "inference_information.json").read_text())
    assert len(information["all_results"]) == 3 + 3  # three views alone, three pairs


@pytest.fixture(scope="module")
def view_test_predictions(nnunet, trained_views, tmp_path_factory) -> list[Path]:
    """Each view's fold-0 prediction of the test set with --save_probabilities."""
    images = nnunet.raw / DATASET / "imagesTs"
    predictions = []
    for trainer in VIEWS:
        out = tmp_path_factory.mktemp(trainer)
        nnunet.run("nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", str(DATASET_ID), "-c", "3d_fullres",
                   "-tr", trainer, "-f", "0", "-device", "cpu", "--save_probabilities", "--disable_progress_bar")
        predictions.append(out)
    return predictions


def test_test_set_fusion_postprocessing_and_evaluation(nnunet, view_test_predictions, tmp_path):
    predictions = view_test_predictions
    fused = tmp_path / "fused"
    nnunet.run("nnUNetv2_ensemble", "-i", *map(str, predictions), "-o", str(fused), "-np", "1", "--save_npz")
    for npz in fused.glob("*.npz"):
        mean = np.mean([probabilities(p / npz.name) for p in predictions], axis=0)
        assert np.allclose(probabilities(npz), mean, atol=1e-3)

    cv = nnunet.run("nnunet25d", "ensemble-cv", "-d", str(DATASET_ID), "--models",
                    *[f"{t}:3d_fullres" for t in VIEWS], "-f", "0")
    pp_folder = Path(cv.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    postprocessed = tmp_path / "fused_pp"
    nnunet.run("nnUNetv2_apply_postprocessing", "-i", str(fused), "-o", str(postprocessed), "-pp_pkl_file",
               str(pp_folder / "postprocessing.pkl"), "-np", "1", "-plans_json", str(predictions[0] / "plans.json"),
               "-dataset_json", str(predictions[0] / "dataset.json"))
    summary = postprocessed / "summary.json"
    nnunet.run("nnUNetv2_evaluate_folder", str(nnunet.raw / DATASET / "labelsTs"), str(postprocessed), "-djfile",
               str(predictions[0] / "dataset.json"), "-pfile", str(predictions[0] / "plans.json"), "-o", str(summary),
               "-np", "1")
    assert len(json.loads(summary.read_text())["metric_per_case"]) == 2


def test_learned_fusion_nested_by_fold_and_applied_to_the_test_set(nnunet, trained_views, view_test_predictions,
                                                                   tmp_path):
    for trainer in VIEWS:
        nnunet.run("nnUNetv2_train", str(DATASET_ID), "3d_fullres", "1", "-tr", trainer, "-device", "cpu", "--npz",
                   training=True)
    out = tmp_path / "fusion"
    result = nnunet.run("nnunet25d", "fuse-views", "-d", str(DATASET_ID), "--models",
                        *[f"{t}:3d_fullres" for t in VIEWS], "-f", "0", "1", "-o", str(out))
    assert "| learned |" in result.stdout and "| averaging |" in result.stdout
    splits = json.loads((nnunet.preprocessed / DATASET / "splits_final.json").read_text())
    validated = len(splits[0]["val"]) + len(splits[1]["val"])
    rows = (out / "cv_dice.csv").read_text().splitlines()
    assert len(rows) == 1 + validated * 2 * 2  # 2 classes; learned and averaging
    fusion = json.loads((out / "fusion.json").read_text())
    assert fusion["models"] == [f"{t}__nnUNetPlans__3d_fullres" for t in VIEWS]
    assert fusion["weights_per_scored_fold"]["0"] != fusion["weights_per_scored_fold"]["1"]

    fused = tmp_path / "fused"
    nnunet.run("nnunet25d", "apply-fusion", "--fusion", str(out / "fusion.json"), "-i",
               *map(str, view_test_predictions), "-o", str(fused))
    import SimpleITK as sitk

    weights = np.asarray(fusion["weights"])
    for npz in view_test_predictions[0].glob("*.npz"):
        stacked = np.stack([probabilities(p / npz.name) for p in view_test_predictions])
        expected = np.einsum("mk,mk...->k...", weights, stacked).argmax(0)
        written = sitk.GetArrayFromImage(sitk.ReadImage(str(fused / npz.name.replace(".npz", ".nii.gz"))))
        assert (written == expected).mean() > 0.999
