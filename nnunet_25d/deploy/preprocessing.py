"""nnU-Net's preprocessing of a case for prediction (``DefaultPreprocessor.run_case``), in numpy.

Read the channels with SimpleITK as nnU-Net's ``SimpleITKIO`` does, transpose, crop to the non-zero region,
normalise each channel with the plans' scheme, resample to the configuration's spacing. The operations are nnU-Net's
own, in its order and on arrays of its memory layout, so that even the float32 means and deviations of the z-score
come out bit for bit the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import binary_fill_holes

from nnunet_25d.deploy.resampling import new_shape_for_spacing, resample
from nnunet_25d.errors import ImageError, UserError

EPSILON = 1e-8


@dataclass
class CaseGeometry:
    """What is needed to put a prediction back onto the input image's grid (nnU-Net's ``properties``)."""

    sitk_spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    spacing: list[float]  # numpy (z, y, x) order, as nnU-Net's 'spacing'
    shape_before_cropping: tuple[int, ...] = ()
    bbox: list[list[int]] = field(default_factory=list)
    shape_after_cropping: tuple[int, ...] = ()

    def as_nnunet_properties(self) -> dict[str, Any]:
        """The dict nnU-Net pickles beside ``.npz`` probabilities (``nnUNetv2_ensemble`` reads it)."""
        return {"sitk_stuff": {"spacing": self.sitk_spacing, "origin": self.origin, "direction": self.direction},
                "spacing": self.spacing, "shape_before_cropping": self.shape_before_cropping,
                "bbox_used_for_cropping": self.bbox,
                "shape_after_cropping_and_before_resampling": self.shape_after_cropping}


def read_case(files: Sequence[Path], image_dimension: int = 3) -> tuple[np.ndarray, CaseGeometry]:
    """(C, Z, Y, X) float32 channels of one case and its geometry; a clear error for images the model cannot take."""
    images, first = [], None
    for path in files:
        image = sitk.ReadImage(str(path))
        if image.GetDimension() != image_dimension or image.GetNumberOfComponentsPerPixel() != 1:
            raise ImageError(f"{path} is a {image.GetDimension()}D image with {image.GetNumberOfComponentsPerPixel()} "
                             f"component(s) per voxel; the model was trained on {image_dimension}D single-component "
                             f"images, one file per channel")
        if first is None:
            first = image
        elif image.GetSize() != first.GetSize() or not np.allclose(image.GetSpacing(), first.GetSpacing()):
            raise ImageError(f"{path} has size {image.GetSize()} and spacing {image.GetSpacing()}, but {files[0]} "
                             f"has {first.GetSize()} and {first.GetSpacing()}: every channel of a case must share "
                             f"one grid")
        images.append(sitk.GetArrayFromImage(image)[None])
    geometry = CaseGeometry(first.GetSpacing(), first.GetOrigin(), first.GetDirection(),
                            [abs(s) for s in first.GetSpacing()[::-1]])
    return np.vstack(images, dtype=np.float32, casting="unsafe"), geometry


def nonzero_mask(data: np.ndarray) -> np.ndarray:
    """Voxels where any channel is non-zero, holes filled."""
    mask = data[0] != 0
    for channel in data[1:]:
        mask |= channel != 0
    return binary_fill_holes(mask)


def bounding_box(mask: np.ndarray) -> list[list[int]]:
    """Half-open [start, stop) per axis of the mask's True voxels; the whole axis where there are none."""
    box = []
    for axis in range(mask.ndim):
        other_axes = tuple(a for a in range(mask.ndim) if a != axis)
        filled = np.flatnonzero(mask.any(axis=other_axes))
        box.append([int(filled[0]), int(filled[-1]) + 1] if len(filled) else [0, mask.shape[axis]])
    return box


def normalise_channel(image: np.ndarray, inside: np.ndarray, scheme: dict[str, Any]) -> np.ndarray:
    """One channel normalised as nnU-Net's scheme ``scheme['name']`` does; ``inside``: the non-zero region."""
    name, properties = scheme["name"], scheme["intensity_properties"]
    image = image.astype(np.float32, copy=False)
    if name == "ZScoreNormalization":
        if scheme["use_mask_for_norm"]:
            mean, std = image[inside].mean(), image[inside].std()
            image[inside] = (image[inside] - mean) / max(std, EPSILON)
        else:
            mean, std = image.mean(), image.std()
            image -= mean
            image /= max(std, EPSILON)
    elif name == "CTNormalization":
        np.clip(image, properties["percentile_00_5"], properties["percentile_99_5"], out=image)
        image -= properties["mean"]
        image /= max(properties["std"], EPSILON)
    elif name == "RescaleTo01Normalization":
        image -= image.min()
        image /= np.clip(image.max(), a_min=EPSILON, a_max=None)
    elif name == "RGBTo01Normalization":
        image /= 255.
    elif name != "NoNormalization":
        raise ImageError(f"normalisation {name!r} is not one the runtime reproduces")
    return image


def preprocess(data: np.ndarray, geometry: CaseGeometry, model: dict[str, Any]) -> np.ndarray:
    """nnU-Net's ``run_case_npy`` without a segmentation; fills in ``geometry``'s cropping fields."""
    if data.shape[0] != model["input_channels"]:
        raise ImageError(f"the case has {data.shape[0]} channel(s), the model takes {model['input_channels']} "
                         f"({', '.join(model.get('channel_names', {}).values())}): name the files CASE_0000"
                         f"{model['file_ending']} ... one per channel")
    data = data.astype(np.float32)
    transpose = model["transpose_forward"]
    data = data.transpose([0, *[a + 1 for a in transpose]])
    spacing = [geometry.spacing[a] for a in transpose]
    geometry.shape_before_cropping = tuple(data.shape[1:])
    mask = nonzero_mask(data)
    geometry.bbox = bounding_box(mask)
    crop = tuple(slice(start, stop) for start, stop in geometry.bbox)
    data, mask = data[(slice(None), *crop)], mask[crop]
    geometry.shape_after_cropping = tuple(data.shape[1:])
    target = list(model["spacing"])
    if len(target) < 3:  # 2d: the slice spacing stays the case's own
        target = [spacing[0], *target]
    new_shape = new_shape_for_spacing(data.shape[1:], spacing, target)
    for channel, scheme in enumerate(model["normalization"]):
        data[channel] = normalise_channel(data[channel], mask, scheme)
    return resample(data, new_shape, spacing, target, **model["resampling"]["data"])
