"""The body in an image, found from the image alone (Mei et al.'s way of locating the fields of view).

Per slice: voxels above a threshold, an erosion and a dilation with square windows, the largest connected
component, its holes filled. The threshold comes from the modality: -600 HU for CT (the authors' value), and for
any other modality Otsu's split of the volume's intensities between their 1st and 99th percentiles (robust to
a few extreme voxels; MRI has no absolute intensity scale). The windows are given in millimetres: the authors'
13 and 6 pixel windows on their 1 mm in-plane grid (here odd: 13 and 7 pixels at 1 mm). Arrays are (z, y, x).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_25d.roi.crop import Box, foreground_box

CT_BODY_THRESHOLD_HU = -600.0
BODY_EROSION_MM = 13.0
BODY_DILATION_MM = 6.0


def is_ct(modality: str) -> bool:
    """nnU-Net's channel name for CT (its CT normalisation keys on the same word)."""
    return modality.strip().lower() == "ct"


def body_threshold(array: np.ndarray, modality: str) -> float:
    """-600 (HU) for CT; otherwise Otsu's split of the intensities between the 1st and 99th percentiles, the
    threshold put half-way between the means of its two classes (Otsu's own cut may sit at the edge of a class
    when the classes are far apart)."""
    if is_ct(modality):
        return CT_BODY_THRESHOLD_HU
    low, high = np.percentile(array, [1, 99])
    inside = array[(array >= low) & (array <= high)]
    values = inside if inside.size else array.ravel()
    from skimage.filters import threshold_otsu

    cut = threshold_otsu(values)
    below, above = values[values <= cut], values[values > cut]
    if not below.size or not above.size:
        return float(cut)
    return float((below.mean() + above.mean()) / 2)  # centred between the two classes Otsu separates


def window(mm: float, spacing: float) -> int:
    """The side in pixels of a centred square window about ``mm`` wide: 2 round(mm / 2 spacing) + 1 (odd, so that
    erosion and dilation shrink and grow every side alike)."""
    return 2 * int(round(mm / (2 * spacing))) + 1


def body_mask_of_slice(slice_: np.ndarray, threshold: float, erosion: tuple[int, int],
                       dilation: tuple[int, int]) -> np.ndarray:
    """One slice's body: threshold, erosion, dilation (square windows, in pixels), largest component, holes filled."""
    binary = slice_ > threshold
    binary = ndimage.binary_erosion(binary, np.ones(erosion, bool), border_value=0)
    binary = ndimage.binary_dilation(binary, np.ones(dilation, bool))
    components, n = ndimage.label(binary)
    if n == 0:
        return binary
    sizes = np.bincount(components.ravel())[1:]
    return ndimage.binary_fill_holes(components == int(np.argmax(sizes)) + 1)


def body_mask(array: np.ndarray, spacing_zyx: tuple[float, float, float], threshold: float,
              erosion_mm: float = BODY_EROSION_MM, dilation_mm: float = BODY_DILATION_MM) -> np.ndarray:
    """The body of every slice (:func:`body_mask_of_slice`), windows converted from mm at the in-plane spacing."""
    erosion = (window(erosion_mm, spacing_zyx[1]), window(erosion_mm, spacing_zyx[2]))
    dilation = (window(dilation_mm, spacing_zyx[1]), window(dilation_mm, spacing_zyx[2]))
    return np.stack([body_mask_of_slice(s, threshold, erosion, dilation) for s in array])


def body_box(array: np.ndarray, spacing_zyx: tuple[float, float, float], threshold: float,
             erosion_mm: float = BODY_EROSION_MM, dilation_mm: float = BODY_DILATION_MM) -> Box:
    """The bounding box of the body mask; the whole array where no body is found."""
    box = foreground_box(body_mask(array, spacing_zyx, threshold, erosion_mm, dilation_mm))
    return box if box is not None else Box((0, 0, 0), tuple(array.shape))  # type: ignore[arg-type]
