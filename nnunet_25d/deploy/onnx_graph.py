"""A 2D network as an ONNX graph on slabs: (N, C, S, h, w) slabs -> (N, K, h, w) logits of their centre slices.

A slab network's stem and 2D network (:class:`SlabNetwork2D`), or nnU-Net's own 2D network on slabs of one slice
(:class:`PlainNetwork2D`), so that one runtime runs both."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nnunet_25d.errors import GraphMismatch
from nnunet_25d.geometry.slab_context import unwrapped

INPUT_NAME, OUTPUT_NAME = "slabs", "logits"
DEFAULT_OPSET = 18
# ONNX Runtime against torch on example slabs, float32 both: far above float32 rounding (1e-5), far below what changes
# a label; a graph past it is not run in torch's place
GRAPH_TOLERANCE = 1e-3


def check_graph_matches(difference: float, what: str) -> None:
    """:class:`GraphMismatch` where ``difference`` (:func:`largest_difference`) is past :data:`GRAPH_TOLERANCE`."""
    if difference > GRAPH_TOLERANCE:
        raise GraphMismatch(f"{what} differs from torch by {difference:.1e} logit")


class SlabNetwork2D(nn.Module):
    """The stem and 2D network of a :class:`~nnunet_25d.architectures.slab_network.SlabNetwork`: what its interior
    mode computes for each slab, without the slicing into slabs around it (the runtime does that)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        network = unwrapped(network)
        self.stem, self.network_2d = network.stem, network.network_2d

    def forward(self, slabs: torch.Tensor) -> torch.Tensor:
        return self.network_2d(self.stem(slabs))


class PlainNetwork2D(nn.Module):
    """nnU-Net's own 2D network on slabs of one slice: (N, C, 1, h, w) -> (N, K, h, w)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, slabs: torch.Tensor) -> torch.Tensor:
        return self.network(slabs[:, :, 0])


def is_plain_2d_network(network: nn.Module) -> bool:
    """A network of 2D convolutions that is not a slab network (nnU-Net's 2d U-Nets)."""
    network = unwrapped(network)
    if hasattr(network, "slab_size"):
        return False
    convolutions = [m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    return bool(convolutions) and all(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in convolutions)


def network_on_slabs(network: nn.Module) -> nn.Module:
    """The module to export for ``network``: slabs in, centre-slice logits out."""
    return PlainNetwork2D(unwrapped(network)) if is_plain_2d_network(network) else SlabNetwork2D(network)


def _export_dynamo(network: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(network, (example,), str(path), dynamo=True, opset_version=opset,
                      external_data=False,  # one self-contained file per fold (weights inside)
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_shapes={"slabs": {0: torch.export.Dim("slices")}}, verbose=False)


def _export_torchscript(network: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(network, (example,), str(path), dynamo=False, opset_version=opset,
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_axes={INPUT_NAME: {0: "slices"}, OUTPUT_NAME: {0: "slices"}})


EXPORTERS = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


def export_onnx(network: nn.Module, example: torch.Tensor, path: Path, opset: int = DEFAULT_OPSET,
                exporters: tuple[str, ...] = ("dynamo", "torchscript")) -> dict[str, Any]:
    """Write ``network`` (eval mode, deep supervision off) as one ONNX file, weights inside, with a dynamic batch
    axis, by the first of ``exporters`` that succeeds; checked with ``onnx.checker``. Returns the exporter used and
    the opset. (The TorchScript exporter takes 0.1 s where torch.export takes 2-4 s on a small U-Net; each takes
    some networks the other cannot trace.)"""
    import onnx

    network = network.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for exporter in exporters:
            try:
                EXPORTERS[exporter](network, example, path, opset)
                break
            except Exception:
                if exporter == exporters[-1]:
                    raise
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    opset_used = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"exporter": exporter, "opset": int(opset_used)}


def largest_difference(network: nn.Module, path: Path, example: torch.Tensor) -> float:
    """Largest absolute logit difference between ONNX Runtime and torch on ``example``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = network(example).numpy()
    return float(abs(session.run(None, {INPUT_NAME: example.numpy()})[0] - expected).max())
