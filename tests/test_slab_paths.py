"""What the network really receives: nnU-Net's own loader and predictor, in-process, on index-encoded volumes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_25d.synthetic import write_nifti
from nnunet_25d.training.registry import TRAINERS
from nnunet_25d.training.slab_trainer import nnUNetTrainer25D

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


def slice_levels(patch: torch.Tensor) -> torch.Tensor:
    """Per-slice median of a (C, D, H, W) patch: the encoded slice index, up to an increasing map."""
    return patch[0].flatten(1).median(dim=1).values


@pytest.mark.parametrize("trainer_class", [nnUNetTrainer25D, nnUNetTrainer25D_5slices])
def test_training_batches_hold_consecutive_slices_in_order(nnunet, index_dataset, trainer_class, monkeypatch):
    trainer = nnunet.trainer(index_dataset, trainer_class, "2d", monkeypatch)
    dl_train, dl_val = trainer.get_dataloaders()
    k = trainer_class.slab_size // 2
    captured = []
    trainer.network.network_2d.register_forward_pre_hook(lambda module, args: captured.append(args[0]))

    val = next(dl_val)["data"]
    for patch in val:
        steps = torch.diff(slice_levels(patch))
        assert (steps > 0).all() and torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-3), \
            "a validation patch must be consecutive slices in increasing order"
    for _ in range(4):  # augmentation may rotate and mirror in-plane, never along the slices
        for patch in next(dl_train)["data"]:
            assert (torch.diff(slice_levels(patch)) > 0).all()

    with torch.no_grad():
        trainer.network.eval()(val)
    slabs = captured[0]
    depth = val.shape[2]
    for b in range(val.shape[0]):
        for z in range(depth):
            neighbours = [min(max(z + o, 0), depth - 1) for o in range(-k, k + 1)]
            assert torch.equal(slabs[b * depth + z], val[b, 0, neighbours])


def make_predictor(trainer: nnUNetTrainer) -> nnUNetPredictor:
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    _, _, _, mirror_axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    trainer.set_deep_supervision_enabled(False)
    predictor.manual_initialization(trainer.network.eval(), trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, trainer.__class__.__name__, mirror_axes)
    return predictor


def test_inference_slabs_are_the_true_neighbours(nnunet, index_dataset, monkeypatch):
    trainer = nnunet.trainer(index_dataset, nnUNetTrainer25D_5slices, "2d", monkeypatch)
    predictor = make_predictor(trainer)
    seen: set[tuple[int, ...]] = set()

    def record(module, args):
        for slab in args[0]:
            seen.add(tuple(int(v) for v in slab[:, 0, 0].round()))

    trainer.network.network_2d.register_forward_pre_hook(record)
    depth = 17  # not a multiple of the patch depth: tiles overlap unevenly
    volume = torch.arange(depth, dtype=torch.float32)[None, :, None, None].expand(1, depth, 32, 32).contiguous()
    predictor.predict_sliding_window_return_logits(volume)
    for z in range(depth):
        true_slab = tuple(min(max(z + o, 0), depth - 1) for o in range(-2, 3))
        assert true_slab in seen, f"slice {z} was never predicted from slices {true_slab}"
    for slab in seen:  # tile borders repeat their edge slice: still only slices within z-2..z+2
        assert all(abs(s - slab[2]) <= 2 for s in slab) and list(slab) == sorted(slab)


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
