"""What the network really receives: nnU-Net's own loader and predictor, in-process, on index-encoded volumes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_25d.datasets.synthetic import write_nifti
from nnunet_25d.trainers.registry import TRAINERS
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D

nnUNetTrainer25D_5slices = TRAINERS["nnUNetTrainer25D_5slices"]

pytestmark = pytest.mark.integration
INDEX_ID, INDEX_NAME, DEPTH = 974, "Dataset974_IndexEncoded", 12


@pytest.fixture(scope="module")
def index_dataset(nnunet) -> str:
    """Voxel value = slice index (plus faint noise so that z-scoring is defined); a square label in each slice."""
    folder = nnunet.raw / INDEX_NAME
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for case in range(5):
        image = np.arange(DEPTH, dtype=np.float32)[:, None, None] + np.zeros((DEPTH, 32, 32), np.float32)
        image += rng.normal(0, 1e-3, image.shape).astype(np.float32)
        label = np.zeros(image.shape, np.uint8)
        label[:, 10:20, 10:20] = 1
        write_nifti(image, (4.0, 0.8, 0.8), folder / "imagesTr" / f"case_{case:03d}_0000.nii.gz")
        write_nifti(label, (4.0, 0.8, 0.8), folder / "labelsTr" / f"case_{case:03d}.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "square": 1}, "numTraining": 5,
        "file_ending": ".nii.gz"}))
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", str(INDEX_ID), "-c", "2d", "-np", "1")
    return INDEX_NAME


def padded_case(trainer: nnUNetTrainer25D, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The preprocessed case with k zero slices (segmentation: nnU-Net's -1) before and after, by hand."""
    data, seg, _, _ = trainer.dataset_class(trainer.preprocessed_dataset_folder, [key]).load_case(key)
    k = trainer.context_width
    data = np.pad(np.asarray(data[:]), ((0, 0), (k, k), (0, 0), (0, 0)))
    seg = np.pad(np.asarray(seg[:]), ((0, 0), (k, k), (0, 0), (0, 0)), constant_values=-1)
    return torch.from_numpy(data).float(), torch.from_numpy(seg.astype(np.int16))


def slice_levels(volume: torch.Tensor) -> torch.Tensor:
    """Mean of the non-zero voxels of each slice of (C, D, H, W) (0 for a zero slice): the encoded slice index,
    whatever in-plane padding a patch got."""
    nonzero = volume[0].flatten(1).ne(0)
    return (volume[0].flatten(1) * nonzero).sum(1) / nonzero.sum(1).clamp(min=1)


def candidate_boxes(image: torch.Tensor, patch: torch.Tensor) -> list[list[list[int]]]:
    """Bounding boxes nnU-Net's loader can cut from ``image`` that hold ``patch``'s slices (foreground-centred
    boxes reach half a patch out in-plane)."""
    depth, *in_plane = patch.shape[1:]
    levels, patch_levels = slice_levels(image), slice_levels(patch)
    starts = [s for s in range(image.shape[1] - depth + 1)
              if torch.allclose(levels[s:s + depth], patch_levels, atol=1e-2)]
    shifts = [range(-n // 2, size - n // 2 + 1) for size, n in zip(image.shape[2:], in_plane)]
    return [[[s, s + depth], [y, y + in_plane[0]], [x, x + in_plane[1]]]
            for s in starts for y in shifts[0] for x in shifts[1]]


@pytest.mark.parametrize("trainer_class", [nnUNetTrainer25D, nnUNetTrainer25D_5slices])
def test_loss_covers_exactly_the_slices_whose_slab_is_in_the_patch(nnunet, index_dataset, trainer_class, monkeypatch):
    """nnU-Net's own validation loader (no augmentation): every patch is consecutive slices of the volume with k
    zero slices beyond its ends, and the target holds only the slices whose whole slab is in the patch — the
    volume's first and last slices included."""
    trainer = nnunet.trainer(index_dataset, trainer_class, "2d", monkeypatch)
    _, dl_val = trainer.get_dataloaders()
    k = trainer.context_width
    depth = trainer.configuration_manager.configuration["nnunet_25d"]["training_patch_size"][0]
    first_supervised = set()
    for _ in range(20):
        batch = next(dl_val)
        assert batch["data"].shape[2] == depth and batch["target"][0].shape[2] == depth - 2 * k
        for patch, target, key in zip(batch["data"], batch["target"][0], batch["keys"]):
            image, seg = padded_case(trainer, key)
            boxes = [box for box in candidate_boxes(image, patch)
                     if torch.equal(crop_and_pad_nd(image, box), patch)]
            assert len(boxes) == 1, "a patch is a run of consecutive slices of the zero-padded volume"
            (start, stop), *in_plane = boxes[0]
            expected = crop_and_pad_nd(seg, [[start + k, stop - k], *in_plane], -1).clamp(min=0)
            assert torch.equal(target, expected), "the target is the interior slices only"
            first_supervised.add(start)
    assert 0 in first_supervised and DEPTH + 2 * k - depth in first_supervised, \
        "the volume's first and last slices are supervised, their missing neighbours zero"


def test_training_step_computes_only_supervised_slices(nnunet, index_dataset, monkeypatch):
    trainer = nnunet.trainer(index_dataset, nnUNetTrainer25D_5slices, "2d", monkeypatch)
    trainer.on_train_start()
    try:
        passes = []
        trainer.network.network_2d.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
        batch = next(trainer.dataloader_train)
        trainer.train_step(batch)
        supervised = trainer.configuration_manager.configuration["nnunet_25d"]["supervised_slices"]
        assert passes == [trainer.batch_size * supervised] == [batch["target"][0].shape[0] * batch["target"][0].shape[2]]
    finally:
        trainer.on_train_end()


def test_small_2d_batches_keep_foreground_oversampling(nnunet, index_dataset, monkeypatch):
    plans = nnunet.plans(index_dataset)
    plans["configurations"]["2d"]["batch_size"] = 2
    monkeypatch.setattr(nnunet, "plans", lambda dataset: plans)
    trainer = nnunet.trainer(index_dataset, nnUNetTrainer25D_5slices, "2d", monkeypatch)
    dl_train, _ = trainer.get_dataloaders()
    assert trainer.batch_size == 2, "two one-slice patches, not one patch of two slices"
    assert [dl_train.data_loader.get_do_oversample(i) for i in range(2)] == [False, True]


def test_a_step_draws_as_many_slices_independently_as_the_2d_step(nnunet, index_dataset, monkeypatch):
    """With the 2d plan's batch of 12, the slab step is 12 patches of one supervised slice each (each patch one
    random draw of nnU-Net's loader, 12 2D passes), foreground forced for the same share of supervised slices as
    nnU-Net's own 2d loader forces (the earlier design: 3 patches x 4 consecutive slices)."""
    plans = nnunet.plans(index_dataset)
    plans["configurations"]["2d"]["batch_size"] = 12
    monkeypatch.setattr(nnunet, "plans", lambda dataset: plans)
    slab = nnunet.trainer(index_dataset, nnUNetTrainer25D, "2d", monkeypatch)
    flat = nnunet.trainer(index_dataset, nnUNetTrainer, "2d", monkeypatch)
    deep = nnunet.trainer(index_dataset, TRAINERS["nnUNetTrainer25D_DeepPatches"], "2d", monkeypatch)
    assert (slab.batch_size, deep.batch_size) == (12, 3)
    slab_loader, _ = slab.get_dataloaders()
    flat_loader, _ = flat.get_dataloaders()
    assert [slab_loader.data_loader.get_do_oversample(i) for i in range(12)] == \
        [flat_loader.data_loader.get_do_oversample(i) for i in range(12)]
    slab.on_train_start()
    try:
        passes = []
        slab.network.network_2d.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
        batch = next(slab.dataloader_train)
        assert batch["data"].shape[:3] == (12, 1, 3) and batch["target"][0].shape[2] == 1
        slab.train_step(batch)
        assert passes == [12]
    finally:
        slab.on_train_end()


def make_predictor(trainer: nnUNetTrainer) -> nnUNetPredictor:
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    trainer.set_deep_supervision_enabled(False)
    predictor.manual_initialization(trainer.network.eval(), trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, trainer.__class__.__name__, (1, 2))
    return predictor


def _logits_at(predictor: nnUNetPredictor, volume: torch.Tensor, z: int) -> torch.Tensor:
    return predictor.predict_sliding_window_return_logits(volume)[:, z]


def test_prediction_of_slice_z_depends_on_neighbours_and_only_them(nnunet, tiny_dataset, monkeypatch):
    trainer = nnunet.trainer(tiny_dataset, nnUNetTrainer25D, "2d", monkeypatch)
    predictor = make_predictor(trainer)
    torch.manual_seed(0)
    volume = torch.randn(1, 10, 32, 32)
    z = 4
    base = _logits_at(predictor, volume, z)
    for offset, should_change in ((1, True), (-1, True), (2, False), (-3, False)):
        changed = volume.clone()
        changed[:, z + offset] = torch.randn(32, 32)
        assert (not torch.equal(_logits_at(predictor, changed, z), base)) == should_change, f"offset {offset}"


def test_stock_2d_does_not_see_neighbours(nnunet, tiny_dataset, monkeypatch):
    nnunet.set_environ(monkeypatch)
    plans_manager = PlansManager(nnunet.plans(tiny_dataset))
    configuration = plans_manager.get_configuration("2d")
    dataset_json = json.loads((nnunet.preprocessed / tiny_dataset / "dataset.json").read_text())
    network = nnUNetTrainer.build_network_architecture(plans_manager, configuration, 1, 3, False).eval()
    predictor = nnUNetPredictor(perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration, None, dataset_json, "nnUNetTrainer", (0, 1))
    torch.manual_seed(0)
    volume = torch.randn(1, 10, 32, 32)
    changed = volume.clone()
    changed[:, 5] = torch.randn(32, 32)
    assert torch.equal(_logits_at(predictor, volume, 4), _logits_at(predictor, changed, 4))
