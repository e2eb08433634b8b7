import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.augmentation import InPlaneGaussianBlurTransform
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


def test_slab_trainer_pipeline_blurs_in_plane_only():
    args = ([3, 32, 32], (-3.1, 3.1), None, (1, 2), True)
    assert _blurs(nnUNetTrainer.get_training_transforms(*args)) != [InPlaneGaussianBlurTransform]
    assert _blurs(nnUNetTrainer25D.get_training_transforms(*args)) == [InPlaneGaussianBlurTransform]
