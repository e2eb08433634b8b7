"""nnUNetSlabPredictor: nnU-Net's predictor, with slab networks run as nnU-Net 2d runs its 2D networks.

For a slab network the volume is cut into chunks of ``n`` consecutive slices along the slab axis; each chunk, with
its ``k`` context slices either side (zeros beyond the volume's ends), is tiled in-plane exactly as nnU-Net 2d tiles
a slice (its in-plane patch, step size, Gaussian with sigma = 1/8 of the tile, mirroring over the trained axes) and
the network computes only the chunk's ``n`` slices (:attr:`SlabNetwork.interior_only`). Chunks never overlap along
the slab axis, so every slice is predicted once, from its own slab, whatever the volume's depth; memory is 2d's:
the volume's logits plus one chunk's tiles. Per chunk the weighted tiles are summed and normalised in float32 and
stored once in float16 (nnU-Net 2d sums in float16), so the rounding error is at most 2d's own.

Networks that are not slab networks (nnU-Net's own, the 3D survey networks) go through nnU-Net's sliding window
unchanged, so one predictor serves every model folder.

``backend="onnxruntime"`` (the trainers' final validation on CPU) runs the same sliding window with the network
exported to ONNX Runtime (:mod:`nnunet_25d.deploy`); the logits agree with PyTorch's to float16 rounding.
"""
from __future__ import annotations

import hashlib
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from nnunetv2.utilities.helpers import dummy_context, empty_cache
from torch import nn
from tqdm import tqdm

from nnunet_25d.deploy.onnx_graph import check_graph_matches, export_onnx, largest_difference, network_on_slabs
from nnunet_25d.deploy.sliding_window import SlabSlidingWindow
from nnunet_25d.geometry.slab_context import unwrapped
from nnunet_25d.geometry.views import from_view, permute_spatial, plane_axes, to_view

GAUSSIAN_SIGMA_SCALE = 1. / 8  # nnU-Net's
GAUSSIAN_VALUE_SCALE = 10  # nnU-Net's; the normalisation divides it out


def is_slab_network(network: nn.Module) -> bool:
    """A network that predicts each slice from its slab and can compute a patch's interior slices only."""
    network = unwrapped(network)
    return all(hasattr(network, name) for name in ("slab_size", "slab_axis", "interior_only"))


@contextmanager
def interior_only(network: nn.Module) -> Iterator[None]:
    """The network computes only the slices whose slab lies inside its input, for the duration."""
    network = unwrapped(network)
    before = network.interior_only
    network.interior_only = True
    try:
        yield
    finally:
        network.interior_only = before


def chunk_with_context(volume: torch.Tensor, start: int, stop: int, width: int) -> torch.Tensor:
    """Slices ``start - width .. stop + width`` of (C, D, H, W) ``volume`` along D, zero slices beyond its ends."""
    depth = volume.shape[1]
    inner = volume[:, max(start - width, 0):min(stop + width, depth)]
    before, after = max(0, width - start), max(0, stop + width - depth)
    if before or after:
        inner = nn.functional.pad(inner, (0, 0, 0, 0, before, after))
    return inner


class nnUNetSlabPredictor(nnUNetPredictor):
    """``nnUNetPredictor`` whose sliding window gives every slice of a slab model its true slab at any depth.

    ``slices_per_forward``: slices per 2D pass. Default: on CUDA the network's (the slices a training step
    supervises, about nnU-Net 2d's batch); on CPU one, as nnU-Net 2d, because batching slices makes each slower
    there (measured at 512 x 512: 0.11 s per slice one at a time, 0.25 s per slice twelve at a time).
    """

    def __init__(self, *args, slices_per_forward: int | None = None, backend: str = "torch", **kwargs):
        super().__init__(*args, **kwargs)
        self.slices_per_forward = slices_per_forward
        self.backend = backend
        self._graphs: dict[str, object] = {}
        self._graph_folder: tempfile.TemporaryDirectory | None = None

    @torch.inference_mode()
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor) -> torch.Tensor:
        if not is_slab_network(self.network):
            return super().predict_sliding_window_return_logits(input_image)
        if input_image.ndim != 4:
            raise ValueError(f"input_image must be (C, X, Y, Z), got shape {tuple(input_image.shape)}")
        self.network = self.network.to(self.device)
        self.network.eval()
        if self.backend == "onnxruntime" and self.device.type == "cpu" and self.use_gaussian:
            session = self._onnx_session(input_image.shape[0])
            if session is not None:
                return self._onnx_sliding_window(input_image, session)
        empty_cache(self.device)
        autocast = torch.autocast(self.device.type) if self.device.type == "cuda" else dummy_context()
        with autocast, interior_only(self.network):
            if self.perform_everything_on_device and self.device.type == "cuda":
                try:
                    return self._slab_sliding_window(input_image, self.device)
                except torch.OutOfMemoryError:
                    print("Prediction on device was unsuccessful, probably due to a lack of memory. Moving results "
                          "arrays to CPU")
                    empty_cache(self.device)
            return self._slab_sliding_window(input_image, torch.device("cpu"))

    def _chunk_depth(self) -> int:
        if self.slices_per_forward:
            return self.slices_per_forward
        if self.device.type == "cuda":
            return max(1, unwrapped(self.network).slices_per_forward or 1)
        return 1

    def _plane_tile(self, slab_axis: int) -> list[int]:
        return [int(self.configuration_manager.patch_size[a]) for a in plane_axes(slab_axis)]

    def _slab_sliding_window(self, image: torch.Tensor, results_device: torch.device) -> torch.Tensor:
        network = unwrapped(self.network)
        slab_axis, width = network.slab_axis, network.slab_size // 2
        tile = self._plane_tile(slab_axis)
        view, revert_padding = pad_nd_image(permute_spatial(image, to_view(slab_axis)), tile, "constant",
                                            {"value": 0}, True, None)
        view = view.to(results_device)
        depth, plane = view.shape[1], tuple(view.shape[2:])
        steps = compute_steps_for_sliding_window(plane, tile, self.tile_step_size)
        corners = [(sx, sy) for sx in steps[0] for sy in steps[1]]
        gaussian = self._tile_weights(tile, results_device)
        plane_weights = torch.zeros(plane, dtype=torch.float32, device=results_device)
        for sx, sy in corners:
            plane_weights[sx:sx + tile[0], sy:sy + tile[1]] += gaussian
        logits = torch.zeros((self.label_manager.num_segmentation_heads, depth, *plane), dtype=torch.half,
                             device=results_device)
        chunk = self._chunk_depth()
        starts = range(0, depth, chunk)
        with tqdm(total=len(starts) * len(corners), disable=not self.allow_tqdm) as progress:
            for start in starts:
                stop = min(start + chunk, depth)
                slabs = chunk_with_context(view, start, stop, width)
                summed = torch.zeros((logits.shape[0], stop - start, *plane), dtype=torch.float32,
                                     device=results_device)
                for sx, sy in corners:
                    window = slabs[:, :, sx:sx + tile[0], sy:sy + tile[1]]
                    prediction = self._predict_tile(window, slab_axis).mul_(gaussian)
                    summed[:, :, sx:sx + tile[0], sy:sy + tile[1]] += prediction
                    progress.update()
                logits[:, start:stop] = summed.div_(plane_weights)
        logits = logits[(slice(None), *revert_padding[1:])]
        return permute_spatial(logits, from_view(slab_axis))

    def _tile_weights(self, tile: list[int], device: torch.device) -> torch.Tensor:
        if not self.use_gaussian:
            return torch.ones(tile, dtype=torch.float32, device=device)
        return compute_gaussian(tuple(tile), GAUSSIAN_SIGMA_SCALE, GAUSSIAN_VALUE_SCALE, torch.float32, device)

    def _predict_tile(self, window: torch.Tensor, slab_axis: int) -> torch.Tensor:
        """(C, n + 2k, h, w) slabs in view layout -> (K, n, h, w) float32 logits of the n interior slices."""
        x = permute_spatial(window, from_view(slab_axis))[None].to(self.device)
        prediction = self._internal_maybe_mirror_and_predict(x)[0]
        return permute_spatial(prediction, to_view(slab_axis)).to(window.device, torch.float32)

    def _onnx_session(self, channels: int):
        """The network's current weights as an ONNX Runtime session (exported once per set of weights); None, with
        a warning, where the export fails or differs from torch: the torch path then runs."""
        from nnunet_25d.deploy.predictor import OnnxSession

        digest = weights_digest(self.network)
        if digest not in self._graphs:
            if self._graph_folder is None:
                self._graph_folder = tempfile.TemporaryDirectory(prefix="nnunet25d_validation_graphs_")
            path = Path(self._graph_folder.name) / f"{digest[:16]}.onnx"
            module = network_on_slabs(self.network).eval()
            slabs = self._example_slabs(channels)
            try:
                export_onnx(module, slabs, path, exporters=("torchscript", "dynamo"))
                check_graph_matches(largest_difference(module, path, slabs), "the exported graph")
            except Exception as error:  # a mismatch, or the exporters' own failures: the torch path predicts
                warnings.warn(f"ONNX Runtime cannot run this network ({type(error).__name__}: {str(error)[:200]}); "
                              f"predicting with PyTorch")
                self.backend = "torch"
                return None
            self._graphs[digest] = OnnxSession(path, ["CPUExecutionProvider"])
        return self._graphs[digest]

    def _example_slabs(self, channels: int) -> torch.Tensor:
        network = unwrapped(self.network)
        generator = torch.Generator().manual_seed(0)
        tile = self._plane_tile(network.slab_axis)
        return torch.randn(2, channels, network.slab_size, *tile, generator=generator)

    def _onnx_sliding_window(self, image: torch.Tensor, session) -> torch.Tensor:
        network = unwrapped(self.network)
        axis = network.slab_axis
        mirrored = list(self.allowed_mirroring_axes or []) if self.use_mirroring else []
        window = SlabSlidingWindow(session, self.label_manager.num_segmentation_heads, network.slab_size,
                                   self._plane_tile(axis), self.tile_step_size, GAUSSIAN_SIGMA_SCALE,
                                   [to_view(axis).index(a) for a in mirrored], self._chunk_depth())
        view = permute_spatial(image, to_view(axis)).to("cpu", torch.float32).numpy()
        return permute_spatial(torch.from_numpy(window(np.ascontiguousarray(view))), from_view(axis))


def weights_digest(network: torch.nn.Module) -> str:
    """SHA-256 of a network's parameters and buffers, in order: equal digests, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in unwrapped(network).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
