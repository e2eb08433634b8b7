"""A slab network's 2D part as an ONNX graph: (N, C, S, h, w) slabs -> (N, K, h, w) logits of their centre slices."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nnunet_25d.geometry.slab_context import unwrapped

INPUT_NAME, OUTPUT_NAME = "slabs", "logits"
DEFAULT_OPSET = 18


class SlabNetwork2D(nn.Module):
    """The stem and 2D network of a :class:`~nnunet_25d.architectures.slab_network.SlabNetwork`: what its interior
    mode computes for each slab, without the slicing into slabs around it (the runtime does that)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        network = unwrapped(network)
        self.stem, self.network_2d = network.stem, network.network_2d

    def forward(self, slabs: torch.Tensor) -> torch.Tensor:
        return self.network_2d(self.stem(slabs))


def export_onnx(network: nn.Module, example: torch.Tensor, path: Path, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Write ``network`` (eval mode, deep supervision off) as one ONNX file, weights inside, with a dynamic batch
    axis; checked with ``onnx.checker``. Returns the exporter used and the opset."""
    import onnx

    network = network.eval()
    exporter = "dynamo"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(network, (example,), str(path), dynamo=True, opset_version=opset,
                              external_data=False,  # one self-contained file per fold (weights inside)
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes={"slabs": {0: torch.export.Dim("slices")}}, verbose=False)
        except Exception:  # the TorchScript exporter takes what torch.export cannot trace
            exporter = "torchscript"
            torch.onnx.export(network, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "slices"}, OUTPUT_NAME: {0: "slices"}})
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
