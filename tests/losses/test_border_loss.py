"""Border-weighted cross-entropy (Ψ-Net's border focus as a loss) and the ``_BorderLoss`` trainer variants."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from tests.conftest import TINY_ID
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss

from nnunet_25d.losses.border import BorderWeightedCrossEntropy, border_band, border_weights
from nnunet_25d.trainers.border_loss_trainer import BorderLossMixin


def band_by_definition(labels: np.ndarray, width: int) -> np.ndarray:
    """Voxel (i, j) is on the band iff a voxel with another label lies within Chebyshev distance ``width``."""
    h, w = labels.shape
    band = np.zeros_like(labels, dtype=bool)
    for i in range(h):
        for j in range(w):
            window = labels[max(0, i - width):i + width + 1, max(0, j - width):j + width + 1]
            band[i, j] = (window != labels[i, j]).any()
    return band


def square(size: int = 16, start: int = 4, side: int = 6) -> torch.Tensor:
    labels = torch.zeros(1, 1, size, size)
    labels[..., start:start + side, start:start + side] = 1
    return labels


@pytest.mark.parametrize("width", [1, 2, 3])
def test_band_of_a_square_lesion_is_its_dilation_minus_its_erosion(width):
    start, side = 4, 6
    expected = np.zeros((16, 16), dtype=bool)
    expected[start - width:start + side + width, start - width:start + side + width] = True
    expected[start + width:start + side - width, start + width:start + side - width] = False
    band = border_band(square(start=start, side=side), width)[0, 0].numpy()
    assert np.array_equal(band, expected)
    assert np.array_equal(band, band_by_definition(square(start=start, side=side)[0, 0].numpy(), width))


def test_band_between_two_lesion_labels_and_at_the_patch_edge():
    labels = np.zeros((12, 12), dtype=np.int64)
    labels[2:8, 2:6], labels[2:8, 6:10] = 1, 2  # two labels touching; the patch edge itself is no border
    labels[:, 11] = 1
    band = border_band(torch.from_numpy(labels)[None], 1)[0].numpy()
    assert np.array_equal(band, band_by_definition(labels, 1))
    assert band[4, 5] and band[4, 6] and not band[4, 3]  # the 1|2 border; inside label 1, two voxels away


def test_weights_are_one_plus_the_border_weight_on_the_band():
    weights = border_weights(square(), 2, 4.0)[0, 0]
    band = border_band(square(), 2)[0, 0]
    assert set(weights[band].tolist()) == {5.0} and set(weights[~band].tolist()) == {1.0}


def test_in_plane_band_stays_in_the_lesion_slices():
    volume = torch.zeros(1, 1, 3, 12, 12)
    volume[0, 0, 1, 4:8, 4:8] = 1  # a lesion in the middle slice only
    in_plane = border_band(volume, 1)[0, 0]
    assert not in_plane[0].any() and not in_plane[2].any()
    assert torch.equal(in_plane[1], border_band(volume[:, :, 1], 1)[0, 0])
    three_d = border_band(volume, 1, in_plane=False)[0, 0]
    assert torch.equal(three_d[0], three_d[2]) and three_d[0, 3:9, 3:9].all() and not three_d[0, 2].any()


def test_ignored_voxels_make_no_border_and_are_not_on_one():
    labels = torch.zeros(1, 10, 10)
    labels[0, :, 5:] = 9  # ignore label on the right half, next to background
    labels[0, 2:4, 1:3] = 1
    band = border_band(labels, 1, ignore_label=9)[0]
    assert not band[:, 4:].any(), "background next to the ignored region is no border"
    expected = torch.from_numpy(band_by_definition(labels[0, :, :5].numpy(), 1))
    assert torch.equal(band[:, :5], expected)


def test_loss_equals_the_hand_computed_weighted_mean():
    torch.manual_seed(0)
    target = square(size=8, start=2, side=3)[:, 0]  # (1, 8, 8)
    logits = torch.randn(1, 2, 8, 8)
    log_p = torch.log_softmax(logits, 1).numpy()[0]
    labels = target[0].long().numpy()
    weight = 1 + 3.0 * band_by_definition(labels, 1)
    rows, cols = np.indices(labels.shape)
    expected = (weight * -log_p[labels, rows, cols]).sum() / labels.size
    loss = BorderWeightedCrossEntropy(width=1, border_weight=3.0)(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("ignore", [None, 2])
def test_zero_border_weight_is_nnunets_cross_entropy(ignore):
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 4, 8, 8)
    target = torch.randint(0, 2, (2, 1, 4, 8, 8)).float()
    if ignore is not None:
        target[0, 0, :2] = ignore
    ours = BorderWeightedCrossEntropy(border_weight=0.0, ignore_index=ignore)(logits, target)
    theirs = RobustCrossEntropyLoss(**({} if ignore is None else {"ignore_index": ignore}))(logits, target)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert BorderWeightedCrossEntropy(border_weight=4.0, ignore_index=ignore)(logits, target) > ours


def test_deep_supervision_finds_each_scale_border_in_its_own_target():
    """nnU-Net's DeepSupervisionWrapper(DC_and_CE_loss) with the border CE: Σ_s w_s (Dice_s + borderCE_s), each
    border computed by hand from that scale's (downsampled) target."""
    torch.manual_seed(2)
    full = square(size=16, start=4, side=8)
    targets = [full, full[..., ::2, ::2]]
    outputs = [torch.randn(1, 2, 16, 16), torch.randn(1, 2, 8, 8)]
    compound = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                              dice_class=MemoryEfficientSoftDiceLoss)
    compound.ce = BorderWeightedCrossEntropy(width=2, border_weight=4.0)
    weights = (2 / 3, 1 / 3)
    total = DeepSupervisionWrapper(compound, weights)(outputs, targets)
    expected = 0.0
    for weight, output, target in zip(weights, outputs, targets):
        labels = target[0, 0].long().numpy()
        border = 1 + 4.0 * band_by_definition(labels, 2)
        log_p = torch.log_softmax(output, 1)[0].numpy()
        rows, cols = np.indices(labels.shape)
        ce = (border * -log_p[labels, rows, cols]).sum() / labels.size
        dice = compound.dc(output, target).item()
        expected += weight * (ce + dice)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    band_coarse = band_by_definition(targets[1][0, 0].numpy(), 2)
    assert band_coarse.sum() != band_by_definition(full[0, 0].numpy(), 2)[::2, ::2].sum(), "the scales differ"


def test_bad_parameters_and_region_datasets_say_what_is_wrong():
    with pytest.raises(ValueError, match="border width"):
        BorderWeightedCrossEntropy(width=0)
    with pytest.raises(ValueError, match="border weight"):
        BorderWeightedCrossEntropy(border_weight=-1)
    regions = SimpleNamespace(label_manager=SimpleNamespace(has_regions=True))
    with pytest.raises(ValueError, match="uses regions"):
        BorderLossMixin._build_loss(regions)


@pytest.mark.parametrize("name", ["nnUNetTrainer25D_BorderLoss", "nnUNetTrainer25DFusion_BorderLoss",
                                  "nnUNetTrainer25D_BorderLoss_5slices_2epochs_5iters",
                                  "nnUNetTrainer25DPEAttention_BorderLoss", "nnUNetTrainer25DCoronal_BorderLoss"])
def test_nnunet_lookup_finds_the_border_variants(monkeypatch, name):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_25d import TRAINER_FOLDER
    from nnunet_25d.trainers.registry import TRAINERS

    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINER_FOLDER))
    found = recursive_find_trainer_class_by_name(name)
    assert found is TRAINERS[name] and issubclass(found, BorderLossMixin)
    assert found.__mro__[found.__mro__.index(BorderLossMixin) + 1].__name__ == name.split("_BorderLoss")[0]


def read_label(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.integration
def test_slab_trainer_with_border_loss_trains_and_predicts_like_its_validation(nnunet, tiny_dataset, tmp_path,
                                                                                monkeypatch):
    from nnunet_25d.trainers.registry import TRAINERS

    trainer = nnunet.trainer(tiny_dataset, TRAINERS["nnUNetTrainer25D_BorderLoss"], "2d", monkeypatch)
    assert isinstance(trainer.loss, DeepSupervisionWrapper)
    assert isinstance(trainer.loss.loss.ce, BorderWeightedCrossEntropy), "the CE term is the border-weighted one"
    trainer.on_train_start()
    try:
        batch = next(trainer.dataloader_train)
        with torch.no_grad():
            outputs = trainer.network(batch["data"])
        assert [o.shape for o in outputs][0][2] < batch["data"].shape[2], "slab context is cropped"
        assert [o.shape[2:] for o in outputs] == [t.shape[2:] for t in batch["target"]], "targets cropped alike"
        assert np.isfinite(trainer.train_step(batch)["loss"])
    finally:
        trainer.on_train_end()

    name = "nnUNetTrainer25D_BorderLoss_2epochs_5iters"
    nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "0", "-tr", name, "-device", "cpu", "--npz", training=True)
    validation = nnunet.model_folder(tiny_dataset, name) / "fold_0" / "validation"
    case = sorted(validation.glob("*.nii.gz"))[0].name.replace(".nii.gz", "")
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(nnunet.raw / tiny_dataset / "imagesTr" / f"{case}_0000.nii.gz", inputs)
    nnunet.run("nnunet25d", "predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-d", str(TINY_ID), "-c", "2d",
               "-f", "0", "-tr", name, "-device", "cpu", "-npp", "1", "-nps", "1")
    assert np.array_equal(read_label(tmp_path / "out" / f"{case}.nii.gz"), read_label(validation / f"{case}.nii.gz"))
    assert json.loads((validation / "summary.json").read_text())["metric_per_case"]
