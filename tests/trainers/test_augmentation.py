from types import SimpleNamespace

import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.trainers.augmentation import (
    InPlaneGaussianBlurTransform,
    PermuteSpatialAxesTransform,
    blur_in_plane_only,
    configure_in_plane_augmentation,
    in_plane_augmentation,
)
from nnunet_25d.planning.configuration import SLAB_KEY
from nnunet_25d.geometry.slab_context import CropSlabContext, with_context_cropped
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D


def test_in_plane_blur_never_mixes_slices_and_runs_on_thin_patches():
    blur = InPlaneGaussianBlurTransform(blur_sigma=(1.0, 1.0), p_per_channel=1)
    image = torch.zeros(1, 3, 16, 16)
    image[0, 1, 8, 8] = 1.0
    out = blur(image=image.clone())["image"]
    assert out[0, 0].abs().max() == 0 and out[0, 2].abs().max() == 0, "blur leaked into neighbouring slices"
    assert 0 < out[0, 1, 8, 8] < 1 and out[0, 1, 8, 9] > 0, "the slice itself is blurred"


@pytest.mark.parametrize("depth", [1, 4])
def test_in_plane_blur_is_the_2d_blur_of_each_slice(depth):
    """Reference: batchgenerators' own GaussianBlurTransform on each (C, H, W) slice (fixed sigma, every channel)."""
    settings = dict(blur_sigma=(1.5, 1.5), p_per_channel=1)
    image = torch.randn(2, depth, 12, 10)
    out = InPlaneGaussianBlurTransform(**settings)(image=image.clone())["image"]
    for z in range(depth):
        expected = GaussianBlurTransform(**settings)(image=image[:, z].clone())["image"]
        assert torch.allclose(out[:, z], expected, atol=1e-6)
    assert not torch.allclose(out, image)


def test_in_plane_blur_copies_every_setting_of_the_blur_it_replaces():
    blur = GaussianBlurTransform(blur_sigma=(0.5, 2.0), synchronize_channels=True, synchronize_axes=True,
                                 p_per_channel=0.25, benchmark=True)
    copy = InPlaneGaussianBlurTransform.like(blur)
    assert type(copy) is InPlaneGaussianBlurTransform and vars(copy) == vars(blur)


def test_blur_in_plane_only_swaps_bare_and_randomly_applied_blurs_and_nothing_else():
    blur, bare_blur = GaussianBlurTransform((0.5, 1.0)), GaussianBlurTransform((1.0, 2.0))
    brightness = MultiplicativeBrightnessTransform((0.7, 1.3), True, 1)
    pipeline = ComposeTransforms([RandomTransform(blur, 0.2), bare_blur, RandomTransform(brightness, 0.15),
                                  brightness])
    assert blur_in_plane_only(pipeline) is pipeline
    random_blur, swapped_bare, random_brightness, kept = pipeline.transforms
    assert type(random_blur.transform) is InPlaneGaussianBlurTransform and random_blur.apply_probability == 0.2
    assert vars(random_blur.transform) == vars(blur)
    assert type(swapped_bare) is InPlaneGaussianBlurTransform and vars(swapped_bare) == vars(bare_blur)
    assert random_brightness.transform is brightness and kept is brightness
    assert blur_in_plane_only(bare_blur) is bare_blur and type(bare_blur) is GaussianBlurTransform, \
        "a single transform (no pipeline) is left alone"


def _nnunet_2d_augmentation(in_plane_patch: list[int]):
    """(rotation, initial patch, mirror axes) nnU-Net's own trainer picks for a 2d configuration with this patch."""
    trainer = SimpleNamespace(configuration_manager=SimpleNamespace(patch_size=in_plane_patch),
                              print_to_log_file=lambda *args, **kwargs: None)
    rotation, _, initial, mirror_axes = nnUNetTrainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size(
        trainer)
    assert trainer.inference_allowed_mirroring_axes == mirror_axes
    return rotation, [int(n) for n in initial], mirror_axes


@pytest.mark.parametrize("patch", [[5, 32, 32], [3, 64, 40], [7, 48, 32], [1, 20, 40], [4, 40, 56]])
def test_thin_patch_augmentation_is_nnunets_2d_augmentation_of_the_plane(patch):
    """Rotation range and initial (pre-rotation) patch as nnU-Net's 2d for the in-plane patch (48 x 32: aspect 1.5
    still rotates fully, 64 x 40 only +-15 degrees), the depth untouched, mirroring only the in-plane axes."""
    rotation, dummy_2d, initial, mirror_axes = in_plane_augmentation(patch)
    rotation_2d, initial_2d, mirror_2d = _nnunet_2d_augmentation(patch[1:])
    assert rotation == rotation_2d and dummy_2d is True
    assert [int(n) for n in initial] == [patch[0], *initial_2d]
    assert mirror_axes == tuple(axis + 1 for axis in mirror_2d) == (1, 2)


def test_thin_patch_augmentation_without_rotation_only_scales():
    rotation, _, initial, _ = in_plane_augmentation([5, 32, 64], rotate=False)
    assert rotation == (0.0, 0.0)
    assert [int(n) for n in initial] == [5, 37, 75], "32 / 0.85 and 64 / 0.85 (the smallest scale), rounded down"
    assert in_plane_augmentation([5, 32, 64])[0] == (-np.pi / 12, np.pi / 12)


def test_slab_trainers_never_mirror_the_slice_axis_at_inference():
    """Mirroring the slice axis at test time would double the 2d baseline's test-time augmentation."""
    configuration = {SLAB_KEY: {"supervised_slices": 4}}
    trainer = SimpleNamespace(slab_size=3, print_to_log_file=lambda *args, **kwargs: None,
                              configuration_manager=SimpleNamespace(patch_size=[6, 32, 32], batch_size=3,
                                                                    configuration=configuration))
    result = nnUNetTrainer25D.configure_rotation_dummyDA_mirroring_and_inital_patch_size(trainer)
    assert result[3] == (1, 2) and trainer.inference_allowed_mirroring_axes == (1, 2)
    bare = SimpleNamespace(configuration_manager=SimpleNamespace(patch_size=[6, 32, 32]))
    assert configure_in_plane_augmentation(bare)[3] == (1, 2) and bare.inference_allowed_mirroring_axes == (1, 2)


@pytest.mark.parametrize("permutation", [(2, 0, 1), (1, 2, 0), (0, 2, 1)])
def test_permute_spatial_axes_moves_image_and_segmentation_alike(permutation):
    image = torch.randn(2, 3, 4, 5)
    segmentation = torch.randint(0, 4, (1, 3, 4, 5))
    out = PermuteSpatialAxesTransform(list(permutation))(image=image.clone(), segmentation=segmentation.clone())
    order = (0, *(1 + p for p in permutation))
    assert torch.equal(out["image"], image.permute(order)) and out["image"].is_contiguous()
    assert torch.equal(out["segmentation"], segmentation.permute(order))


def _blurs(pipeline):
    found = []
    for step in pipeline.transforms:
        inner = getattr(step, "transform", step)
        if "Blur" in type(inner).__name__:
            found.append(type(inner))
    return found


def test_slab_trainer_pipeline_blurs_in_plane_only_and_crops_the_context_first():
    args = ([3, 32, 32], (-3.1, 3.1), [[1, 1, 1], [1, 0.5, 0.5]], (1, 2), True)
    assert _blurs(nnUNetTrainer.get_training_transforms(*args)) != [InPlaneGaussianBlurTransform]
    slab_trainer = SimpleNamespace(context_width=1, slab_axis=0)  # what the method reads of the trainer
    pipeline = nnUNetTrainer25D.get_training_transforms(slab_trainer, *args)
    assert _blurs(pipeline) == [InPlaneGaussianBlurTransform]
    assert type(pipeline.transforms[0]) is CropSlabContext, "the context's segmentation is dropped before any work"
    validation = nnUNetTrainer25D.get_validation_transforms(slab_trainer, [[1, 1, 1], [1, 0.5, 0.5]])
    assert type(validation.transforms[0]) is CropSlabContext


def test_context_crop_keeps_the_image_and_drops_the_end_slices_of_the_segmentation():
    image = torch.arange(7.0).view(1, 7, 1, 1).expand(1, 7, 2, 3).clone()
    segmentation = torch.arange(7).view(1, 7, 1, 1).expand(1, 7, 2, 3).clone()
    out = CropSlabContext(2)(image=image, segmentation=segmentation)
    assert torch.equal(out["image"], image) and out["segmentation"][0, :, 0, 0].tolist() == [2, 3, 4]
    sideways = CropSlabContext(1, axis=2)(image=image, segmentation=segmentation)["segmentation"]
    assert sideways.shape == (1, 7, 2, 1)


def _labelled_patch(depth: int, size: int = 40) -> dict:
    generator = torch.Generator().manual_seed(depth)
    image = torch.randn(1, depth, size, size, generator=generator)
    segmentation = torch.randint(0, 4, (1, depth, size // 4, size // 4), generator=generator).to(torch.int16)
    segmentation = segmentation.repeat_interleave(4, 2).repeat_interleave(4, 3)  # blobs, so interpolation matters
    segmentation[:, :, :3] = -1  # nnU-Net's "outside the image"
    return {"image": image, "segmentation": segmentation}


@pytest.mark.parametrize("seed", range(6))
def test_cropping_the_context_first_gives_the_batch_cropping_it_last_gives(seed):
    """Reference: the same pipeline with the crop just before deep-supervision downsampling (where it was), on the
    same random draws; rotation and scaling forced on every other seed so both spatial paths are compared."""
    args = ([3, 32, 32], (-3.1, 3.1), [[1, 1, 1], [1, 0.5, 0.5], [1, 0.25, 0.25]], (1, 2), True)
    first = with_context_cropped(nnUNetTrainer.get_training_transforms(*args), 1)
    steps = list(nnUNetTrainer.get_training_transforms(*args).transforms)
    steps.insert(next(i for i, t in enumerate(steps) if isinstance(t, DownsampleSegForDSTransform)), CropSlabContext(1))
    last = ComposeTransforms(steps)
    for pipeline in (first, last):
        spatial = next(t for t in pipeline.transforms if isinstance(t, SpatialTransform))
        spatial.p_rotation = spatial.p_scaling = float(seed % 2)
    patch = _labelled_patch(3)
    torch.manual_seed(seed), np.random.seed(seed)
    expected = last(**{key: value.clone() for key, value in patch.items()})
    torch.manual_seed(seed), np.random.seed(seed)
    got = first(**{key: value.clone() for key, value in patch.items()})
    assert type(first.transforms[0]) is CropSlabContext
    assert torch.equal(got["image"], expected["image"])
    assert all(torch.equal(a, b) for a, b in zip(got["segmentation"], expected["segmentation"]))
    assert got["segmentation"][0].shape == (1, 1, 32, 32)


def test_the_context_stays_until_deep_supervision_where_a_step_reads_the_segmentation_beside_the_image():
    args = ([3, 32, 32], (-3.1, 3.1), [[1, 1, 1], [1, 0.5, 0.5]], (1, 2), True)
    masked = nnUNetTrainer.get_training_transforms(*args, use_mask_for_norm=[True])
    three_d = nnUNetTrainer.get_training_transforms([3, 32, 32], (-3.1, 3.1), [[1, 1, 1]], (1, 2), False)
    for pipeline in (masked, three_d):
        steps = [type(step) for step in with_context_cropped(pipeline, 1).transforms]
        assert steps.index(CropSlabContext) == steps.index(DownsampleSegForDSTransform) - 1
    validation = nnUNetTrainer.get_validation_transforms([[1, 1, 1]])
    assert type(with_context_cropped(validation, 1).transforms[0]) is CropSlabContext
    masked_validation = ComposeTransforms([MaskImageTransform([0], 0, 0), *validation.transforms])
    assert type(with_context_cropped(masked_validation, 1).transforms[-2]) is CropSlabContext
    sometimes_masked = ComposeTransforms([RandomTransform(MaskImageTransform([0], 0, 0), 0.5)])
    assert type(with_context_cropped(sometimes_masked, 1).transforms[-1]) is CropSlabContext, "last, without DS"


def test_the_context_crop_keeps_its_axis_and_width():
    crop = with_context_cropped(nnUNetTrainer.get_validation_transforms([[1, 1, 1]]), 2, axis=1).transforms[0]
    assert (crop.width, crop.axis) == (2, 1)
