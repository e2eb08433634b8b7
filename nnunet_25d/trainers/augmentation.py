"""Augmentation that keeps the slices of a slab apart.

nnU-Net's pipeline blurs along every axis, the slice axis included. For a slab model that mixes neighbouring slices
into each other (and on patches a few slices deep the reflect-padded blur cannot run at all), so the 2.5D trainers
blur each slice in-plane instead, as nnU-Net's 2d configuration does.
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size

from nnunet_25d.geometry.views import permute_spatial

IN_PLANE_AXES = (1, 2)


class InPlaneGaussianBlurTransform(GaussianBlurTransform):
    """GaussianBlurTransform on each slice of a (C, D, H, W) image, with one set of sigmas for the whole patch."""

    def get_parameters(self, **data_dict) -> dict:
        return super().get_parameters(image=data_dict["image"][:, 0])

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        for z in range(img.shape[1]):
            img[:, z] = super()._apply_to_image(img[:, z].clone(), **params)
        return img

    @classmethod
    def like(cls, blur: GaussianBlurTransform) -> "InPlaneGaussianBlurTransform":
        return cls(blur.blur_sigma, blur.synchronize_channels, blur.synchronize_axes, blur.p_per_channel,
                   blur.benchmark)


def blur_in_plane_only(pipeline: BasicTransform) -> BasicTransform:
    """Swap every GaussianBlurTransform in nnU-Net's composed pipeline for the in-plane version."""
    if not isinstance(pipeline, ComposeTransforms):
        return pipeline
    for index, step in enumerate(pipeline.transforms):
        if isinstance(step, RandomTransform) and type(step.transform) is GaussianBlurTransform:
            step.transform = InPlaneGaussianBlurTransform.like(step.transform)
        elif type(step) is GaussianBlurTransform:
            pipeline.transforms[index] = InPlaneGaussianBlurTransform.like(step)
    return pipeline


def in_plane_augmentation(patch_size: list[int], rotate: bool = True
                          ) -> tuple[tuple[float, float], bool, list[int], tuple[int, int]]:
    """(rotation, dummy 2D augmentation, initial patch size, mirror axes) for a thin (D, H, W) patch.

    Rotation, scaling and mirroring stay in-plane, with the ranges nnU-Net's 2d uses for the in-plane patch:
    rotating out of plane would mix slices of different depth into one slab, and mirroring the slice axis at
    inference would double the test-time augmentation of the 2d baseline. ``rotate=False`` for planes whose voxels
    are far from square (rotating the voxel grid would shear the anatomy).
    """
    depth, *in_plane = patch_size
    if not rotate:
        rotation = (0.0, 0.0)
    elif max(in_plane) / min(in_plane) > 1.5:
        rotation = (-15.0 / 360 * 2.0 * np.pi, 15.0 / 360 * 2.0 * np.pi)
    else:
        rotation = (-np.pi, np.pi)
    initial_in_plane = get_patch_size(in_plane, rotation, rotation, rotation, (0.85, 1.25))
    return rotation, True, [depth, *initial_in_plane], IN_PLANE_AXES


def configure_in_plane_augmentation(trainer) -> tuple[tuple[float, float], bool, list[int], tuple[int, int]]:
    """A trainer's ``configure_rotation_dummyDA_mirroring_and_inital_patch_size`` for thin patches: the
    :func:`in_plane_augmentation` of its patch, with test-time mirroring restricted to the same in-plane axes."""
    patch_size = trainer.configuration_manager.patch_size
    rotation, dummy_2d, initial_patch_size, mirror_axes = in_plane_augmentation(patch_size)
    trainer.inference_allowed_mirroring_axes = mirror_axes
    return rotation, dummy_2d, initial_patch_size, mirror_axes


class PermuteSpatialAxesTransform(BasicTransform):
    """Permute the spatial axes of image and segmentation, (C, X, Y, Z) -> (C, *[X, Y, Z][permutation])."""

    def __init__(self, permutation: tuple[int, int, int]):
        super().__init__()
        self.permutation = tuple(permutation)

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        return permute_spatial(img, self.permutation).contiguous()

    _apply_to_segmentation = _apply_to_image


def in_view_layout(pipeline: ComposeTransforms, to_view: tuple[int, int, int],
                   from_view: tuple[int, int, int]) -> ComposeTransforms:
    """Run ``pipeline`` (built for a patch in view layout, slab axis first) on patches in the data's layout: permute
    into the view first and back before deep-supervision downsampling (whose scales are in the data's layout)."""
    steps = list(pipeline.transforms)
    back = next((i for i, t in enumerate(steps) if isinstance(t, DownsampleSegForDSTransform)), len(steps))
    steps.insert(back, PermuteSpatialAxesTransform(from_view))
    return ComposeTransforms([PermuteSpatialAxesTransform(to_view), *steps])
