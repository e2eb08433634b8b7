"""The slab predictor's sliding window (:class:`nnunet_25d.inference.slab_predictor.nnUNetSlabPredictor`) in numpy.

The volume is cut into chunks of consecutive slices along the slab axis; each chunk with its ``k`` context slices
either side (zeros beyond the volume) is tiled in-plane with nnU-Net 2d's tiles, step and Gaussian; every tile's
slabs go through the exported 2D network (any callable ``(N, C, S, h, w) -> (N, K, h, w)``), mirrored over the
trained axes. Sums and normalisation in float32, the volume's logits stored in float16: the PyTorch predictor's
operations in its order.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

SlabNetwork2D = Callable[[np.ndarray], np.ndarray]
GAUSSIAN_VALUE_SCALE = 10  # nnU-Net's; the normalisation divides it out


def tile_gaussian(tile: Sequence[int], sigma_scale: float) -> np.ndarray:
    """nnU-Net's tile weights: a Gaussian of sigma ``sigma_scale`` x tile centred on the tile, no zeros."""
    delta = np.zeros(tile)
    delta[tuple(n // 2 for n in tile)] = 1
    weights = gaussian_filter(delta, [n * sigma_scale for n in tile], 0, mode="constant", cval=0)
    weights = (weights / (weights.max() / GAUSSIAN_VALUE_SCALE)).astype(np.float32)
    weights[weights == 0] = weights[weights != 0].min()
    return weights


def tile_starts(size: int, tile: int, step_size: float) -> list[int]:
    """nnU-Net's tile corners along one axis: the fewest steps of at most ``step_size`` x tile, evenly spread."""
    steps = int(np.ceil((size - tile) / (tile * step_size))) + 1
    stride = (size - tile) / (steps - 1) if steps > 1 else 0
    return [int(np.round(stride * i)) for i in range(steps)]


def pad_plane(volume: np.ndarray, tile: Sequence[int]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """(C, D, H, W) padded with zeros to at least ``tile`` in-plane, content centred (extra voxel after), and the
    slices that undo it."""
    pads = [max(0, t - n) for n, t in zip(volume.shape[2:], tile)]
    widths = [(0, 0), (0, 0), *[(p // 2, p - p // 2) for p in pads]]
    undo = tuple(slice(before, before + n) for (before, _), n in zip(widths[2:], volume.shape[2:]))
    return np.pad(volume, widths) if any(pads) else volume, undo


def chunk_with_context(view: np.ndarray, start: int, stop: int, width: int) -> np.ndarray:
    """Slices ``start - width .. stop + width`` of (C, D, H, W) ``view`` along D, zero slices beyond its ends."""
    depth = view.shape[1]
    inner = view[:, max(start - width, 0):min(stop + width, depth)]
    before, after = max(0, width - start), max(0, stop + width - depth)
    if before or after:
        inner = np.pad(inner, [(0, 0), (before, after), (0, 0), (0, 0)])
    return inner


def mirror_combinations(view_axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every non-empty combination of the mirrored axes, in nnU-Net's order."""
    return [c for n in range(len(view_axes)) for c in itertools.combinations(view_axes, n + 1)]


class SlabSlidingWindow:
    """Logits (K, *view) of a (C, D, H, W) view-layout volume (slab axis first), every slice from its true slab.

    ``mirror_axes``: spatial axes of the view layout (0 = the slab axis) to average mirrored predictions over.
    """

    def __init__(self, network: SlabNetwork2D, num_heads: int, slab_size: int, tile: Sequence[int],
                 step_size: float = 0.5, sigma_scale: float = 1. / 8, mirror_axes: Sequence[int] = (),
                 slices_per_forward: int = 1, progress: Callable[[int], None] | None = None):
        self.network, self.num_heads, self.width = network, num_heads, slab_size // 2
        self.slab_size, self.tile, self.step_size = slab_size, list(tile), step_size
        self.gaussian = tile_gaussian(self.tile, sigma_scale)
        self.mirrors = mirror_combinations(mirror_axes)
        self.slices_per_forward, self.progress = slices_per_forward, progress

    def tiles(self, plane: Sequence[int]) -> list[tuple[int, int]]:
        starts = [tile_starts(n, t, self.step_size) for n, t in zip(plane, self.tile)]
        return list(itertools.product(*starts))

    def __call__(self, view: np.ndarray) -> np.ndarray:
        view, undo = pad_plane(view, self.tile)
        depth, plane = view.shape[1], view.shape[2:]
        (h, w), corners = self.tile, self.tiles(plane)
        plane_weights = np.zeros(plane, dtype=np.float32)
        for y, x in corners:
            plane_weights[y:y + h, x:x + w] += self.gaussian
        logits = np.zeros((self.num_heads, depth, *plane), dtype=np.float16)
        for start in range(0, depth, self.slices_per_forward):
            stop = min(start + self.slices_per_forward, depth)
            slabs = chunk_with_context(view, start, stop, self.width)
            summed = np.zeros((self.num_heads, stop - start, *plane), dtype=np.float32)
            for y, x in corners:
                summed[:, :, y:y + h, x:x + w] += self.mirrored(slabs[:, :, y:y + h, x:x + w]) * self.gaussian
                if self.progress:
                    self.progress(1)
            logits[:, start:stop] = summed / plane_weights
        return logits[(slice(None), slice(None), *undo)]

    def mirrored(self, window: np.ndarray) -> np.ndarray:
        """(K, n, h, w) float32: the mean over the window and its mirrored copies, as nnU-Net averages them."""
        prediction = self.interior(window)
        for axes in self.mirrors:
            flip = tuple(a + 1 for a in axes)
            prediction += np.flip(self.interior(np.flip(window, flip)), flip)
        if self.mirrors:
            prediction /= len(self.mirrors) + 1
        return prediction

    def interior(self, window: np.ndarray) -> np.ndarray:
        """(C, n + 2k, h, w) -> (K, n, h, w): the network on the slab of each of the window's n interior slices."""
        n = window.shape[1] - 2 * self.width
        slabs = np.stack([window[:, z:z + self.slab_size] for z in range(n)])
        return np.ascontiguousarray(self.network(np.ascontiguousarray(slabs, dtype=np.float32)).transpose(1, 0, 2, 3))
