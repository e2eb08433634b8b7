"""Training on slices with their true slabs only.

A thin training patch of n + 2k slices supervises its n interior slices: the k slices at either end only feed
their neighbours' slabs (the network computes no output for them, :attr:`SlabNetwork.interior_only`, and the
targets lose them, :class:`CropSlabContext`). So that a volume's first and last slices are supervised too, each
case carries k zero slices beyond either end (:class:`SlabContextDataset`) — the zeros nnU-Net's predictor pads
with, so a slab at a volume's end looks the same in training and at inference.
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.nnunet.seg_to_onehot import MoveSegAsOneHotToDataTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert3DTo2DTransform
from torch import nn
from torch._dynamo import OptimizedModule

# nnU-Net's loader pads segmentations with -1 ("outside the image") and images with 0
SEGMENTATION_PADDING = -1
# steps that read the segmentation beside the image, slice for slice: the context slices must reach them
SEGMENTATION_BESIDE_IMAGE = (MaskImageTransform, MoveSegAsOneHotToDataTransform)


class ZeroPaddedAxis:
    """Read-only view of an array (numpy or blosc2, channels first) with ``width`` constant slices added before and
    after spatial ``axis``; slicing reads only the requested part of the array."""

    def __init__(self, array, axis: int, width: int, fill: float = 0):
        self.array, self.axis, self.width, self.fill = array, axis + 1, width, fill
        shape = list(array.shape)
        shape[self.axis] += 2 * width
        self.shape = tuple(shape)
        self.dtype = array.dtype
        self.ndim = len(shape)

    def __getitem__(self, index: tuple) -> np.ndarray:
        index = list(index) + [slice(None)] * (self.ndim - len(index))
        start, stop, step = index[self.axis].indices(self.shape[self.axis])
        if step != 1:
            raise IndexError("ZeroPaddedAxis supports contiguous slices only")
        inner = self.array.shape[self.axis]
        inner_start, inner_stop = min(max(start - self.width, 0), inner), min(max(stop - self.width, 0), inner)
        before = max(0, min(stop, self.width) - start)
        after = max(0, stop - max(start, self.width + inner))
        index[self.axis] = slice(inner_start, max(inner_start, inner_stop))
        values = np.asarray(self.array[tuple(index)])
        if before == after == 0 and values.flags.owndata:  # a fresh copy already (blosc2 reads): no second one
            return values
        padding = [(0, 0)] * self.ndim
        padding[self.axis] = (before, after)
        return np.pad(values, padding, constant_values=self.fill)


class SlabContextDataset:
    """An nnU-Net dataset whose cases have ``width`` zero slices beyond each end of spatial ``axis`` (segmentation:
    nnU-Net's -1), with the foreground locations moved along."""

    def __init__(self, dataset, width: int, axis: int = 0):
        self.dataset, self.width, self.axis = dataset, width, axis
        self.identifiers = dataset.identifiers

    def load_case(self, identifier: str):
        data, seg, seg_prev, properties = self.dataset.load_case(identifier)
        if self.width == 0:
            return data, seg, seg_prev, properties
        data = ZeroPaddedAxis(data, self.axis, self.width)
        seg = ZeroPaddedAxis(seg, self.axis, self.width, SEGMENTATION_PADDING)
        if seg_prev is not None:
            seg_prev = ZeroPaddedAxis(seg_prev, self.axis, self.width, SEGMENTATION_PADDING)
        properties = dict(properties)
        properties["class_locations"] = {key: self._shifted(locations)
                                         for key, locations in properties["class_locations"].items()}
        return data, seg, seg_prev, properties

    __getitem__ = load_case

    def _shifted(self, locations: np.ndarray) -> np.ndarray:
        locations = np.array(locations, copy=True)
        if len(locations):
            locations[:, self.axis + 1] += self.width  # column 0 is the channel
        return locations


class CropSlabContext(BasicTransform):
    """Drop the ``width`` context slices at either end of spatial ``axis`` from the segmentation (the image keeps
    them: they feed the slabs of the supervised slices)."""

    def __init__(self, width: int, axis: int = 0):
        super().__init__()
        self.width, self.axis = width, axis

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        return img

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        if self.width == 0:
            return segmentation
        depth = segmentation.shape[self.axis + 1]
        return segmentation.narrow(self.axis + 1, self.width, depth - 2 * self.width)


def with_context_cropped(pipeline: ComposeTransforms, width: int, axis: int = 0) -> ComposeTransforms:
    """``pipeline`` with :class:`CropSlabContext` as early as it can go.

    First, when the pipeline's spatial transform works slice by slice (nnU-Net's dummy 2D augmentation) and nothing
    reads the segmentation beside the image: then the context slices' segmentation is never rotated, scaled,
    mirrored or relabelled (two thirds of a 3-slice patch's segmentation work). Otherwise just before
    deep-supervision downsampling (or last, without it)."""
    steps = list(pipeline.transforms)
    at = next((i for i, t in enumerate(steps) if isinstance(t, DownsampleSegForDSTransform)), len(steps))
    if crops_first_safely(steps):
        at = 0
    steps.insert(at, CropSlabContext(width, axis))
    return ComposeTransforms(steps)


def crops_first_safely(steps: list[BasicTransform]) -> bool:
    """Whether a thin segmentation can enter ``steps``: no step lines the segmentation up with the image (masking,
    cascades) and any spatial transform sees one slice at a time (nnU-Net's dummy 2D augmentation)."""
    inner = [getattr(step, "transform", step) for step in steps]
    if any(isinstance(step, SEGMENTATION_BESIDE_IMAGE) for step in inner):
        return False
    slice_by_slice = any(isinstance(step, Convert3DTo2DTransform) for step in inner)
    return slice_by_slice or not any(isinstance(step, SpatialTransform) for step in inner)


def unwrapped(network: nn.Module) -> nn.Module:
    """The network inside nnU-Net's DDP and ``torch.compile`` wrappers."""
    if isinstance(network, nn.parallel.DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network
