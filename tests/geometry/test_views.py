"""Multi-view trainers: slabs really run along the view's axis, and predictions come back in the data's layout."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_25d.trainers.augmentation import PermuteSpatialAxesTransform, in_view_layout
from nnunet_25d.planning.configuration import ConfigurationError, training_patch_size
from nnunet_25d.trainers.view_trainer import derive_view_plans
from nnunet_25d.planning.inference_depth import inference_depth
from nnunet_25d.datasets.synthetic import write_nifti
from nnunet_25d.trainers.view_trainer import nnUNetTrainer25DCoronal, nnUNetTrainer25DSagittal
from nnunet_25d.geometry.views import from_view, permute_spatial, plane_axes, slab_axis_of, to_view

INDEX_ID, INDEX_NAME, SHAPE = 977, "Dataset977_IndexAlongY", (12, 24, 20)
TRAINERS = {"coronal": nnUNetTrainer25DCoronal, "sagittal": nnUNetTrainer25DSagittal}


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_view_permutations_are_inverse(axis):
    x = torch.randn(2, 3, 4, 5, 6)
    assert to_view(axis)[0] == axis
    assert torch.equal(permute_spatial(permute_spatial(x, to_view(axis)), from_view(axis)), x)


def test_view_axes_and_planes_by_hand():
    assert [slab_axis_of(view) for view in ("axial", "coronal", "sagittal")] == [0, 1, 2]
    assert [plane_axes(axis) for axis in (0, 1, 2)] == [(1, 2), (0, 2), (0, 1)]
    assert [to_view(axis) for axis in (0, 1, 2)] == [(0, 1, 2), (1, 0, 2), (2, 0, 1)]
    assert [from_view(axis) for axis in (0, 1, 2)] == [(0, 1, 2), (1, 0, 2), (1, 2, 0)]


def test_unknown_view_names_the_choices():
    with pytest.raises(ValueError, match=r"^unknown view 'transverse'; choose one of axial, coronal, sagittal$"):
        slab_axis_of("transverse")


def test_sagittal_view_moves_x_first_and_back():
    """Axis 2's permutation is not its own inverse (to_view = (2, 0, 1), from_view = (1, 2, 0)): applying the
    forward permutation twice, or the inverse first, would not give the data back."""
    x = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # one leading (channel) axis, spatial (z, y, x) = (3, 4, 5)
    in_view = permute_spatial(x, to_view(2))
    assert in_view.shape == (2, 5, 3, 4) and in_view[1, 4, 2, 3] == x[1, 2, 3, 4]
    assert torch.equal(permute_spatial(in_view, from_view(2)), x)
    assert permute_spatial(in_view, to_view(2)).shape != x.shape


class RecordShape(BasicTransform):
    """Records the image and segmentation shapes it sees."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def apply(self, data_dict, **params):
        self.seen.append((tuple(data_dict["image"].shape), tuple(data_dict["segmentation"].shape)))
        return data_dict


@pytest.mark.parametrize("deep_supervision", [True, False])
def test_training_pipeline_enters_the_view_first_and_leaves_it_before_deep_supervision(deep_supervision):
    """Sagittal: a permutation that is not its own inverse, so entering and leaving the view cannot be swapped."""
    inside, scales = RecordShape(), [[1, 1, 1], [1, 0.5, 0.5]]
    steps = [inside, DownsampleSegForDSTransform(scales)] if deep_supervision else [inside]
    pipeline = in_view_layout(ComposeTransforms(steps), to_view(2), from_view(2))
    image, segmentation = torch.randn(1, 3, 4, 6), torch.randint(0, 3, (1, 3, 4, 6))
    out = pipeline(image=image.clone(), segmentation=segmentation.clone())
    assert inside.seen == [((1, 6, 3, 4), (1, 6, 3, 4))], "the view's own steps see the slab axis first"
    assert torch.equal(out["image"], image)
    expected = DownsampleSegForDSTransform(scales)(segmentation=segmentation)["segmentation"] if deep_supervision \
        else [segmentation]
    received = out["segmentation"] if deep_supervision else [out["segmentation"]]
    assert [s.shape for s in received] == [s.shape for s in expected], "deep supervision scales the data's layout"
    assert all(torch.equal(a, b) for a, b in zip(received, expected))


@pytest.fixture(scope="module")
def index_dataset(nnunet) -> str:
    """Voxel value = y index (+ faint noise); asymmetric labels (three classes: a 3-slice echo network's logits fit).
    Planned for 3d_fullres."""
    folder = nnunet.raw / INDEX_NAME
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for case in range(5):
        image = np.arange(SHAPE[1], dtype=np.float32)[None, :, None] + np.zeros(SHAPE, np.float32)
        image += rng.normal(0, 1e-3, SHAPE).astype(np.float32)
        label = np.zeros(SHAPE, np.uint8)
        label[2:9, 3:10, 4:16] = 1
        label[9:11, 15:20, 2:5] = 2
        write_nifti(image, (4.0, 0.8, 0.8), folder / "imagesTr" / f"case_{case:03d}_0000.nii.gz")
        write_nifti(label, (4.0, 0.8, 0.8), folder / "labelsTr" / f"case_{case:03d}.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "block": 1, "corner": 2}, "numTraining": 5,
        "file_ending": ".nii.gz"}))
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", str(INDEX_ID), "-c", "3d_fullres", "-np", "1")
    return INDEX_NAME


@pytest.mark.parametrize("view, axis", [("coronal", 1), ("sagittal", 2)])
def test_derived_view_configuration(nnunet, index_dataset, view, axis):
    plans = nnunet.plans(index_dataset)
    source = plans["configurations"]["3d_fullres"]
    derived = derive_view_plans(plans, "3d_fullres", view, 3)["configurations"]["3d_fullres"]
    kwargs = derived["architecture"]["arch_kwargs"]
    assert kwargs["slab_axis"] == axis and kwargs["conv_op"].endswith("Conv2d")
    assert all(entry[axis] == 1 for entry in kwargs["strides"] + kwargs["kernel_sizes"])
    # the plane keeps nnU-Net's anisotropic choices for the coarse slice axis (axis 0)
    assert [s[0] for s in kwargs["strides"]] == [s[0] for s in source["architecture"]["arch_kwargs"]["strides"]]
    median_depth = source["median_image_size_in_voxels"][axis]
    assert derived["patch_size"][axis] == inference_depth(median_depth), "stock: whole volumes along the slab axis"
    assert training_patch_size(derived)[axis] == derived["nnunet_25d"]["supervised_slices"] + 2
    assert [n for a, n in enumerate(training_patch_size(derived)) if a != axis] == \
        [n for a, n in enumerate(source["patch_size"]) if a != axis]
    assert derived["data_identifier"] == source["data_identifier"]
    two_d = {**plans, "configurations": {"2d": {**source, "patch_size": source["patch_size"][1:]}}}
    with pytest.raises(ConfigurationError, match="3d_fullres"):
        derive_view_plans(two_d, "2d", view, 3)


def test_coronal_training_slabs_are_consecutive_rows_of_y(nnunet, index_dataset, monkeypatch):
    trainer = nnunet.trainer(INDEX_NAME, nnUNetTrainer25DCoronal, "3d_fullres", monkeypatch)
    dl_train, dl_val = trainer.get_dataloaders()
    captured = []
    trainer.network.network_2d.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    for batch in (next(dl_val), next(dl_train), next(dl_train)):
        data = batch["data"]
        assert data.shape[2:] == tuple(training_patch_size(trainer.configuration_manager.configuration))
        for patch in data:
            levels = patch[0].transpose(0, 1).flatten(1).median(dim=1).values  # per y row
            inside = levels.abs().gt(0.02).nonzero().flatten()  # ~0 (noise augmented): padding beyond the ends
            assert inside[0] <= 1 and inside[-1] >= len(levels) - 2, "at most k = 1 padded row at either end"
            assert (torch.diff(levels[inside[0]:inside[-1] + 1]) > 0).all(), \
                "patches hold consecutive y rows in order (never mirrored)"
    val = next(dl_val)["data"]
    trainer.network.slices_per_forward = None  # one pass of the 2D network over every slab, in order
    with torch.no_grad():
        trainer.network.eval()(val)
    slabs, depth = captured[-1], val.shape[3]
    for b in range(val.shape[0]):
        for y in range(depth):
            expected = [val[b, 0][:, y + o] if 0 <= y + o < depth else torch.zeros_like(val[b, 0][:, y])
                        for o in (-1, 0, 1)]
            assert torch.equal(slabs[b * depth + y], torch.stack(expected))


def test_plain_2d_view_sees_one_row_and_no_context(nnunet, index_dataset, monkeypatch):
    """nnUNetTrainer25DCoronal_1slice: the paper's plain 2D U-Net per view — one input channel, training patches
    without context rows, each output row from its own input row only."""
    from nnunet_25d.trainers.registry import TRAINERS

    trainer = nnunet.trainer(INDEX_NAME, TRAINERS["nnUNetTrainer25DCoronal_1slice"], "3d_fullres", monkeypatch)
    configuration = trainer.configuration_manager.configuration
    assert training_patch_size(configuration)[1] == configuration["nnunet_25d"]["supervised_slices"]
    batch = next(trainer.get_dataloaders()[0])
    target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
    assert batch["data"].shape[2:] == target.shape[2:] == tuple(training_patch_size(configuration)), \
        "no context rows to crop from the target"
    network = trainer.network.eval()
    first_conv = next(m for m in network.network_2d.modules() if isinstance(m, torch.nn.Conv2d))
    assert network.slab_size == 1 and first_conv.in_channels == 1
    torch.manual_seed(0)
    x = torch.rand(1, 1, 6, 5, 8)
    moved = x.clone()
    moved[:, :, :, 2] += 1.0
    full_resolution = lambda v: network(v)[0] if trainer.enable_deep_supervision else network(v)  # noqa: E731
    with torch.no_grad():
        changed = (full_resolution(moved) - full_resolution(x)).abs().amax(dim=(0, 1, 2, 4)) > 1e-6
    assert changed.tolist() == [False, False, True, False, False]


@pytest.mark.parametrize("view, mirror_axes", [("coronal", (0, 2)), ("sagittal", (0, 1))])
def test_augmentation_and_test_time_mirroring_stay_in_the_view_plane(nnunet, index_dataset, view, mirror_axes,
                                                                      monkeypatch):
    trainer = nnunet.trainer(INDEX_NAME, TRAINERS[view], "3d_fullres", monkeypatch)
    rotation, dummy_2d, initial, training_axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    patch = trainer.configuration_manager.patch_size
    axis = trainer.slab_axis
    assert trainer.inference_allowed_mirroring_axes == mirror_axes and training_axes == (1, 2)  # view layout
    assert initial[axis] == patch[axis], "the slab axis is never scaled or rotated into"
    assert all(initial[a] >= patch[a] for a in range(3)) and dummy_2d
    assert rotation == (0.0, 0.0), "the z-x / z-y planes of 4 mm x 0.8 mm voxels are not rotated"


def echo_predictor(nnunet, view: str, monkeypatch) -> nnUNetPredictor:
    """nnU-Net's predictor around the view's SlabNetwork whose 2D network is the identity: each output channel
    echoes one slice of the slab."""
    nnunet.set_environ(monkeypatch)
    plans = derive_view_plans(nnunet.plans(INDEX_NAME), "3d_fullres", view, 3)
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["network_2d"] = "torch.nn.Identity"
    manager = PlansManager(plans)
    configuration = manager.get_configuration("3d_fullres")
    from nnunet_25d.architectures.slab_network import SlabNetwork

    kwargs = configuration.network_arch_init_kwargs
    network = SlabNetwork(1, 3, kwargs["slab_size"], "torch.nn.Identity", slab_axis=kwargs["slab_axis"]).eval()
    dataset_json = json.loads((nnunet.preprocessed / INDEX_NAME / "dataset.json").read_text())
    # no Gaussian tile weighting: nnU-Net accumulates in half precision, where its tiny border weights round off
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=False, use_mirroring=True,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    trainer = TRAINERS[view]
    axes = tuple(a for a in range(3) if a != kwargs["slab_axis"])
    predictor.manual_initialization(network, manager, configuration, None, dataset_json, trainer.__name__, axes)
    return predictor


@pytest.mark.parametrize("view, axis", [("coronal", 1), ("sagittal", 2)])
def test_prediction_comes_back_in_the_volume_orientation(nnunet, index_dataset, view, axis, monkeypatch):
    predictor = echo_predictor(nnunet, view, monkeypatch)
    torch.manual_seed(0)
    volume = torch.rand(1, 13, 27, 22)  # asymmetric, not a multiple of the patch
    logits = predictor.predict_sliding_window_return_logits(volume).float()  # nnU-Net accumulates in half
    assert logits.shape == (3, 13, 27, 22)
    assert torch.allclose(logits[1], volume[0], atol=2e-3), "the centre slice echo must land where it came from"
    # away from tile borders, channel 0 is the previous slice along the view's axis, not along any other
    previous = logits[0].narrow(axis, 1, volume.shape[axis + 1] - 1)
    expected = volume[0].narrow(axis, 0, volume.shape[axis + 1] - 1)
    assert (previous - expected).abs().median() < 2e-3
    for other in {0, 1, 2} - {axis}:
        shifted = volume[0].narrow(other, 0, volume.shape[other + 1] - 1)
        assert (logits[0].narrow(other, 1, volume.shape[other + 1] - 1) - shifted).abs().median() > 1e-2
