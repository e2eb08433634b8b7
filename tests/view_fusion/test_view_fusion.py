"""Learned view fusion: the weighted mean, learning that weights each model where it is right, nesting by fold
(a case's own probabilities never enter the weights that fuse it), and test-time application."""
import json
import pickle

import numpy as np
import pytest
import torch

from nnunet_25d.errors import UserError
from nnunet_25d.view_fusion.apply import apply_fusion
from nnunet_25d.view_fusion.cross_validation import (
    CrossValidation,
    dice_per_class,
    mean_dice,
    nested_weights,
    run_cross_validation,
)
from nnunet_25d.view_fusion.learn import VoxelSample, fusion_loss, learn_weights, sample_voxels
from nnunet_25d.view_fusion.weights import FusionWeights

MODELS = ("axial", "coronal", "sagittal")


def one_hot(labels: np.ndarray, n_classes: int = 3) -> np.ndarray:
    return np.moveaxis(np.eye(n_classes, dtype=np.float32)[labels], -1, 0)


def synthetic_case(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels of a (6, 8, 8) volume and three models: the first sees class 1 and calls class 2 background, the
    second sees class 2 and calls class 1 background, the third tells background from foreground but not the
    classes. Averaging loses class 2; per-class weights (background from the third) get everything."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((6, 8, 8), dtype=np.int64)
    labels[1:3, 1:4, 1:4] = 1
    labels[4, 4:7, 4:7] = 2
    labels[rng.integers(0, 6), rng.integers(0, 8), rng.integers(0, 8)] = 1
    sees_1 = np.where(labels == 2, 0, labels)
    sees_2 = np.where(labels == 1, 0, labels)
    first = 0.7 * one_hot(sees_1) + 0.3 / 3
    second = 0.7 * one_hot(sees_2) + 0.3 / 3
    background = np.where(labels == 0, 0.9, 0.45).astype(np.float32)
    third = np.stack([background, (1 - background) / 2, (1 - background) / 2])
    return labels, [first, second, third]


def test_fused_probabilities_are_the_weighted_mean_per_class():
    rng = np.random.default_rng(0)
    probabilities = [rng.dirichlet(np.ones(3), size=(4, 5)).transpose(2, 0, 1) for _ in MODELS]
    weights = rng.dirichlet(np.ones(3), size=3).T  # (models, classes), columns sum to 1
    fused = FusionWeights(MODELS, weights).fuse(probabilities)
    expected = np.einsum("mk,mkyx->kyx", weights, np.stack(probabilities))
    assert np.allclose(fused, expected, atol=1e-6)
    averaged = FusionWeights.averaging(MODELS, 3).fuse(probabilities)
    assert np.allclose(averaged, np.mean(probabilities, axis=0), atol=1e-6)


@pytest.mark.parametrize("weights", [np.full((3, 3), 0.5), np.array([[1.2, 1, 1], [-0.2, 0, 0], [0, 0, 0]])])
def test_weights_that_are_not_a_mean_are_refused(weights):
    with pytest.raises(ValueError, match="sum to 1"):
        FusionWeights(MODELS, weights)


def test_dice_counts_a_false_positive_on_an_empty_reference_as_zero():
    reference = np.zeros((4, 4), dtype=int)
    prediction = reference.copy()
    prediction[0, 0] = 2
    reference[1:3, 1:3] = 1
    prediction[1:3, 1:2] = 1
    assert dice_per_class(prediction, reference, range(1, 4)) == pytest.approx([2 * 2 / (2 + 4), 0.0, np.nan],
                                                                              nan_ok=True)


def test_the_sample_keeps_each_classes_voxel_count():
    """Every foreground voxel, as many background ones: weighted back, each class counts as often as in the case."""
    labels = np.zeros((20, 30), dtype=np.int64)
    labels[2:4, 2:7] = 1
    labels[10, 3:6] = 2
    probabilities = [np.random.default_rng(m).dirichlet(np.ones(3), labels.shape).transpose(2, 0, 1) for m in (0, 1)]
    sample = sample_voxels("case", probabilities, labels, max_voxels=40)
    assert (sample.labels > 0).sum() == 13 and (sample.labels == 0).sum() == 14  # of 387 background voxels
    for c in (0, 1, 2):
        assert sample.weights[sample.labels == c].sum() == pytest.approx((labels == c).sum())
    everything = sample_voxels("case", probabilities, labels, max_voxels=10_000)
    assert np.all(everything.weights == 1) and len(everything.labels) == labels.size


def test_the_weighted_sample_estimates_the_whole_cases_loss():
    """Where all background voxels look alike, the weighted sample's loss is the full volume's exactly; the
    unweighted sample (foreground half the voxels) would count the foreground 7x too often."""
    labels = np.zeros((10, 40), dtype=np.int64)
    labels[3:6, 10:20] = 1
    rng = np.random.default_rng(0)
    probabilities = []
    for _ in range(2):
        p = np.tile(rng.dirichlet(np.ones(2))[:, None, None], (1, *labels.shape))
        p[:, labels == 1] = rng.dirichlet(np.ones(2), (labels == 1).sum()).T
        probabilities.append(p.astype(np.float32))
    logits = torch.tensor([[0.3, -0.2], [-0.1, 0.4]])
    whole = fusion_loss(logits, [sample_voxels("c", probabilities, labels, max_voxels=10_000)])
    sampled = sample_voxels("c", probabilities, labels, max_voxels=60)
    assert len(sampled.labels) == 60
    torch.testing.assert_close(fusion_loss(logits, [sampled]), whole)
    unweighted = VoxelSample(sampled.probabilities, sampled.labels, np.ones_like(sampled.weights))
    assert not torch.isclose(fusion_loss(logits, [unweighted]), whole)


def test_learned_weights_follow_the_model_that_is_right_for_each_class():
    weights = learn_weights([sample_voxels(f"case_{seed}", *reversed(synthetic_case(seed))) for seed in (1, 2)])
    assert weights[0, 1] > 0.5 and weights[1, 2] > 0.5  # class 1 from the first model, class 2 from the second
    labels, probabilities = synthetic_case(0)
    learned = FusionWeights(MODELS, weights).fuse(probabilities).argmax(0)
    averaged = FusionWeights.averaging(MODELS, 3).fuse(probabilities).argmax(0)
    assert dice_per_class(learned, labels, range(1, 3)) == [1.0, 1.0]
    assert dice_per_class(averaged, labels, range(1, 3))[1] < 0.5  # averaging loses class 2


def test_a_folds_weights_never_see_its_own_cases():
    samples = {(fold, f"case_{fold}"): sample_voxels(f"case_{fold}", *reversed(synthetic_case(fold)))
               for fold in range(2)}
    before = nested_weights(samples, (0, 1))
    labels, probabilities = synthetic_case(0)
    probabilities = [probabilities[1], probabilities[0], probabilities[2]]  # fold 0's case now says the opposite
    samples[(0, "case_0")] = sample_voxels("case_0", probabilities, labels)
    after = nested_weights(samples, (0, 1))
    assert np.array_equal(before[0], after[0])
    assert not np.allclose(before[1], after[1], atol=1e-3)


def test_nesting_needs_two_folds():
    with pytest.raises(UserError, match="at least two folds"):
        nested_weights({}, (0,))


class ArrayReader:
    """Stands in for nnU-Net's reader in unit tests: references are .npy files."""

    def read_seg(self, path: str):
        return np.load(path)[None], {}


def write_cross_validation(root, n_folds: int = 3) -> CrossValidation:
    folders = [root / model for model in MODELS]
    references = root / "gt_segmentations"
    references.mkdir(parents=True)
    splits = []
    for fold in range(n_folds):
        case = f"case_{fold}"
        labels, probabilities = synthetic_case(fold)
        np.save(references / f"{case}.npy", labels)
        for folder, p in zip(folders, probabilities):
            (folder / f"fold_{fold}" / "validation").mkdir(parents=True, exist_ok=True)
            np.savez(folder / f"fold_{fold}" / "validation" / f"{case}.npz", probabilities=p)
        splits.append({"train": [], "val": [case]})
    return CrossValidation(tuple(folders), references, ".npy", splits, tuple(range(n_folds)), ArrayReader())


def test_cross_validation_scores_learned_fusion_against_averaging(tmp_path):
    cv = write_cross_validation(tmp_path)
    means = run_cross_validation(cv, MODELS, tmp_path / "out")
    assert means["learned"] == {1: 1.0, 2: 1.0}
    assert means["averaging"][2] < 0.5
    saved = json.loads((tmp_path / "out" / "fusion.json").read_text())
    assert saved["models"] == list(MODELS) and set(saved["weights_per_scored_fold"]) == {"0", "1", "2"}
    rows = (tmp_path / "out" / "cv_dice.csv").read_text().splitlines()
    assert rows[0] == "fold,case,class,fusion,dice" and len(rows) == 1 + 3 * 2 * 2


def test_a_missing_validation_output_names_the_command(tmp_path):
    cv = write_cross_validation(tmp_path)
    (tmp_path / "coronal" / "fold_1" / "validation" / "case_1.npz").unlink()
    with pytest.raises(UserError, match="--val --npz"):
        run_cross_validation(cv, MODELS, tmp_path / "out")


def test_mean_dice_skips_undefined_cases():
    rows = [{"fusion": "learned", "class": 1, "dice": d} for d in (1.0, 0.5, float("nan"))]
    assert mean_dice(rows) == {"learned": {1: 0.75}}


def write_predictions(root, weights: FusionWeights, pickled: object = None, segmentation: bool = True) -> list:
    """What ``nnUNetv2_predict --save_probabilities`` leaves per model: ``.npz``, ``.pkl`` (``pickled`` in place of
    the properties, if given), the segmentation (unless not ``segmentation``), dataset.json and plans.json."""
    import SimpleITK as sitk

    folders = []
    dataset_json = {"labels": {"background": 0, "tube": 1, "nodule": 2}, "file_ending": ".nii.gz",
                    "channel_names": {"0": "MRI"}}
    plans = {"image_reader_writer": "SimpleITKIO", "label_manager": "LabelManager", "configurations": {},
             "dataset_name": "Dataset999_X", "plans_name": "nnUNetPlans"}
    properties = {"sitk_stuff": {"spacing": (0.8, 0.8, 4.0), "origin": (0.0, 0.0, 0.0),
                                 "direction": tuple(np.eye(3).ravel())}, "spacing": [4.0, 0.8, 0.8]}
    _, probabilities = synthetic_case(5)
    for model, p in zip(weights.models, probabilities):
        folder = root / model
        folder.mkdir()
        np.savez(folder / "case_005.npz", probabilities=p)
        (folder / "case_005.pkl").write_bytes(pickle.dumps(properties if pickled is None else pickled))
        if segmentation:
            image = sitk.GetImageFromArray(p.argmax(0).astype(np.uint8))
            image.SetSpacing(properties["sitk_stuff"]["spacing"])
            sitk.WriteImage(image, str(folder / "case_005.nii.gz"))
        (folder / "dataset.json").write_text(json.dumps(dataset_json))
        (folder / "plans.json").write_text(json.dumps(plans))
        folders.append(folder)
    del sitk
    return folders


def test_apply_writes_the_argmax_of_the_learned_mean(tmp_path):
    import SimpleITK as sitk

    weights = FusionWeights(MODELS, np.array([[0.2, 0.9, 0.05], [0.2, 0.05, 0.9], [0.6, 0.05, 0.05]]))
    weights.to_json(tmp_path / "fusion.json")
    folders = write_predictions(tmp_path, weights)
    apply_fusion(tmp_path / "fusion.json", folders, tmp_path / "fused", save_probabilities=True)
    _, probabilities = synthetic_case(5)
    expected = weights.fuse(probabilities)
    written = sitk.ReadImage(str(tmp_path / "fused" / "case_005.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(written), expected.argmax(0))
    assert written.GetSpacing() == pytest.approx((0.8, 0.8, 4.0))
    assert np.allclose(np.load(tmp_path / "fused" / "case_005.npz")["probabilities"], expected)


class Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return exec, (f"open({str(self.target)!r}, 'w').close()",)


def test_apply_takes_the_geometry_from_the_segmentation_and_never_unpickles(tmp_path):
    import SimpleITK as sitk

    weights = FusionWeights.averaging(MODELS, 3)
    weights.to_json(tmp_path / "fusion.json")
    target = tmp_path / "payload_ran"
    folders = write_predictions(tmp_path, weights, pickled=Payload(target))
    apply_fusion(tmp_path / "fusion.json", folders, tmp_path / "fused")
    assert not target.exists(), "a .pkl was unpickled"
    assert sitk.ReadImage(str(tmp_path / "fused" / "case_005.nii.gz")).GetSpacing() == pytest.approx((0.8, 0.8, 4.0))
    assert not [p.name for p in (tmp_path / "fused").iterdir() if p.name.startswith(".")], "no partial files left"


def test_apply_without_segmentations_refuses_the_pickles_unless_trusted(tmp_path):
    import SimpleITK as sitk

    weights = FusionWeights.averaging(MODELS, 3)
    weights.to_json(tmp_path / "fusion.json")
    target = tmp_path / "payload_ran"
    (tmp_path / "untrusted").mkdir()
    folders = write_predictions(tmp_path / "untrusted", weights, pickled=Payload(target), segmentation=False)
    with pytest.raises(UserError, match="--trust-pickles") as error:
        apply_fusion(tmp_path / "fusion.json", folders, tmp_path / "fused")
    assert "\n" not in str(error.value) and "case_005.pkl" in str(error.value)
    assert not target.exists() and not (tmp_path / "fused" / "case_005.nii.gz").exists()
    (tmp_path / "trusted").mkdir()
    trusted = write_predictions(tmp_path / "trusted", weights, segmentation=False)
    apply_fusion(tmp_path / "fusion.json", trusted, tmp_path / "fused", trust_pickles=True)
    assert sitk.ReadImage(str(tmp_path / "fused" / "case_005.nii.gz")).GetSpacing() == pytest.approx((0.8, 0.8, 4.0))


def test_apply_with_pickled_objects_in_an_npz_refuses_in_one_line(tmp_path):
    weights = FusionWeights.averaging(MODELS, 3)
    weights.to_json(tmp_path / "fusion.json")
    folders = write_predictions(tmp_path, weights)
    target = tmp_path / "payload_ran"
    np.savez(folders[1] / "case_005.npz", probabilities=np.array([Payload(target)], dtype=object))
    with pytest.raises(UserError, match="cannot be read as probabilities") as error:
        apply_fusion(tmp_path / "fusion.json", folders, tmp_path / "fused")
    assert not target.exists() and "\n" not in str(error.value) and str(folders[1] / "case_005.npz") in str(error.value)


def test_a_write_that_fails_midway_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    """The disk fills up while the fused probabilities are written: one line (OutputWriteError), exit 1 from the
    command, and neither the cut file nor its temporary name stays."""
    import errno

    from nnunet_25d.view_fusion import apply

    weights = FusionWeights.averaging(MODELS, 3)
    weights.to_json(tmp_path / "fusion.json")
    folders = write_predictions(tmp_path, weights)

    def disk_full(file, **arrays):
        file.write(b"PK\x03\x04" + b"\0" * 4000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(apply.np, "savez_compressed", disk_full)
    with pytest.raises(UserError, match="No space left on device") as error:
        apply_fusion(tmp_path / "fusion.json", folders, tmp_path / "fused", save_probabilities=True)
    assert "\n" not in str(error.value) and "case_005.npz" in str(error.value)
    assert sorted(p.name for p in (tmp_path / "fused").iterdir()) == ["case_005.nii.gz"]


def test_apply_needs_one_folder_per_model(tmp_path):
    weights = FusionWeights.averaging(MODELS, 3)
    weights.to_json(tmp_path / "fusion.json")
    folders = write_predictions(tmp_path, weights)
    with pytest.raises(UserError, match="one per model, in that order"):
        apply_fusion(tmp_path / "fusion.json", folders[:2], tmp_path / "fused")


def hand_fusion_loss(logits: np.ndarray, samples: list[VoxelSample], smooth: float = 1e-5) -> float:
    """fusion_loss written out in float64 NumPy: softmax over models, per-class weighted mean, renormalised,
    weighted cross-entropy + 1 - mean foreground soft Dice."""
    weights = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    probabilities = np.concatenate([s.probabilities for s in samples], axis=2).astype(np.float64)
    labels = np.concatenate([s.labels for s in samples])
    voxel_weights = np.concatenate([s.weights for s in samples]).astype(np.float64)
    fused = (weights[:, :, None] * probabilities).sum(0)
    fused = fused / fused.sum(0, keepdims=True)
    truth = np.eye(fused.shape[0])[labels].T
    cross_entropy = -(voxel_weights * np.log(fused[labels, np.arange(len(labels))])).sum() / voxel_weights.sum()
    intersection = (voxel_weights * fused * truth).sum(1)
    total = (voxel_weights * fused).sum(1) + (voxel_weights * truth).sum(1)
    dice = (2 * intersection + smooth) / (total + smooth)
    return float(cross_entropy + 1 - dice[1:].mean())


def test_fusion_loss_is_the_weighted_cross_entropy_plus_dice_written_out():
    rng = np.random.default_rng(4)
    samples = []
    for n in (5, 3):
        probabilities = rng.dirichlet(np.ones(3), size=(2, n)).transpose(0, 2, 1).astype(np.float32)
        labels = rng.integers(0, 2, n)  # class 2 in no label: the one-hot must still have 3 classes
        weights = rng.uniform(0.001, 0.01, n).astype(np.float32)
        samples.append(VoxelSample(probabilities, labels.astype(np.int64), weights))
    logits = np.array([[0.3, -1.0, 0.8], [-0.2, 0.5, -0.4]])
    loss = fusion_loss(torch.tensor(logits, dtype=torch.float32), samples)
    assert float(loss) == pytest.approx(hand_fusion_loss(logits, samples), rel=1e-5, abs=1e-6)
    assert float(fusion_loss(torch.tensor(logits, dtype=torch.float32), samples, smooth=0.5)) == \
        pytest.approx(hand_fusion_loss(logits, samples, smooth=0.5), rel=1e-5)


def test_learning_weights_needs_cases():
    with pytest.raises(ValueError, match="^no cases to learn fusion weights from$"):
        learn_weights([])


def test_the_sample_is_distinct_voxels_drawn_the_same_way_for_a_case_and_stored_compactly():
    labels = np.zeros((4, 10, 10), np.int64)
    labels[1, 2:8, 2:8] = 1
    voxel_index = [np.arange(400, dtype=np.float64).reshape(1, 4, 10, 10)]  # the "probability" is the voxel index
    first, again = (sample_voxels("case_1", voxel_index, labels, 51) for _ in range(2))
    voxels = first.probabilities[0, 0].astype(int)
    np.testing.assert_array_equal(voxels, again.probabilities[0, 0].astype(int))
    assert len(set(voxels)) == len(voxels) == 50, "25 foreground (half of 51, rounded down) + 25 background"
    np.testing.assert_array_equal(labels.reshape(-1)[voxels], first.labels)
    assert first.probabilities.dtype == first.weights.dtype == np.float32 and first.labels.dtype == np.int64


def test_a_single_foreground_voxel_stands_for_itself():
    labels = np.zeros((2, 4, 4), np.int64)
    labels[0, 1, 1] = 2
    sample = sample_voxels("c", [np.full((3, 2, 4, 4), 1 / 3)], labels, max_voxels=10)
    assert sample.weights[sample.labels == 2].tolist() == [1.0]
    assert sample.weights[sample.labels == 0].sum() == pytest.approx(31)
