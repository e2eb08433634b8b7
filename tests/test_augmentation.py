from types import SimpleNamespace

import torch
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.augmentation import InPlaneGaussianBlurTransform
from nnunet_25d.training.slab_context import CropSlabContext
from nnunet_25d.training.slab_trainer import nnUNetTrainer25D


def test_in_plane_blur_never_mixes_slices_and_runs_on_thin_patches():
    blur = InPlaneGaussianBlurTransform(blur_sigma=(1.0, 1.0), p_per_channel=1)
    image = torch.zeros(1, 3, 16, 16)
    image[0, 1, 8, 8] = 1.0
    out = blur(image=image.clone())["image"]
    assert out[0, 0].abs().max() == 0 and out[0, 2].abs().max() == 0, "blur leaked into neighbouring slices"
    assert 0 < out[0, 1, 8, 8] < 1 and out[0, 1, 8, 9] > 0, "the slice itself is blurred"


def _blurs(pipeline):
    found = []
    for step in pipeline.transforms:
        inner = getattr(step, "transform", step)
        if "Blur" in type(inner).__name__:
            found.append(type(inner))
    return found


def test_slab_trainer_pipeline_blurs_in_plane_only_and_crops_the_context_before_deep_supervision():
    args = ([3, 32, 32], (-3.1, 3.1), [[1, 1, 1], [1, 0.5, 0.5]], (1, 2), True)
    assert _blurs(nnUNetTrainer.get_training_transforms(*args)) != [InPlaneGaussianBlurTransform]
    slab_trainer = SimpleNamespace(context_width=1, slab_axis=0)  # what the method reads of the trainer
    pipeline = nnUNetTrainer25D.get_training_transforms(slab_trainer, *args)
    assert _blurs(pipeline) == [InPlaneGaussianBlurTransform]
    steps = [type(step) for step in pipeline.transforms]
    assert steps.index(CropSlabContext) == steps.index(DownsampleSegForDSTransform) - 1
    validation = nnUNetTrainer25D.get_validation_transforms(slab_trainer, [[1, 1, 1], [1, 0.5, 0.5]])
    assert [type(step) for step in validation.transforms][-2:] == [CropSlabContext, DownsampleSegForDSTransform]


def test_context_crop_keeps_the_image_and_drops_the_end_slices_of_the_segmentation():
    image = torch.arange(7.0).view(1, 7, 1, 1).expand(1, 7, 2, 3).clone()
    segmentation = torch.arange(7).view(1, 7, 1, 1).expand(1, 7, 2, 3).clone()
    out = CropSlabContext(2)(image=image, segmentation=segmentation)
    assert torch.equal(out["image"], image) and out["segmentation"][0, :, 0, 0].tolist() == [2, 3, 4]
    sideways = CropSlabContext(1, axis=2)(image=image, segmentation=segmentation)["segmentation"]
    assert sideways.shape == (1, 7, 2, 1)
