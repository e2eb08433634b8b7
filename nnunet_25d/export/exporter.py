"""Export a trained slab model folder: one ONNX file per fold and the runtime's description."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from nnunet_25d.deploy.model_description import NNUNET_FILES, write_model_description
from nnunet_25d.export.description import check_exportable, model_description
from nnunet_25d.deploy.onnx_graph import DEFAULT_OPSET, INPUT_NAME, export_onnx, largest_difference, network_on_slabs
from nnunet_25d.inference.model_folder import check_model_folder, model_folder_of
from nnunet_25d.geometry.views import plane_axes
from nnunet_25d.files import atomic_path

EXAMPLE_SLICES = 2  # the batch axis is dynamic; any size traces the same graph


def loaded_predictor(model_folder: Path, folds: list, checkpoint: str):
    from nnunet_25d.inference.slab_predictor import nnUNetSlabPredictor

    predictor = nnUNetSlabPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_folder), folds, checkpoint)
    return predictor


def example_slabs(description: dict) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(EXAMPLE_SLICES, description["input_channels"], description["slab_size"],
                       *description["tile"])


def export_fold(predictor, parameters: dict, path: Path, example: torch.Tensor, opset: int = DEFAULT_OPSET,
                exporters: tuple[str, ...] = ("dynamo", "torchscript")) -> dict:
    """One fold's weights as ``path`` (whole or not at all): the exporter, opset and the largest logit difference
    between ONNX Runtime and torch on ``example``."""
    predictor.network.load_state_dict(parameters)
    network = network_on_slabs(predictor.network).eval()
    with atomic_path(path) as tmp:
        exported = export_onnx(network, example, tmp, opset, exporters)
    return {**exported, "largest_difference_to_torch": largest_difference(network, path, example)}


def export_model(dataset: str, trainer: str, plans: str, configuration: str, folds: list, checkpoint: str,
                 output: Path, opset: int | None, args: argparse.Namespace) -> list[str]:
    """Write ``output``/fold_F.onnx per fold and nnunet25d_model.json; returns the lines to print."""
    model_folder = model_folder_of(dataset, trainer, plans, configuration)
    check_model_folder(model_folder, folds, checkpoint, args)
    predictor = loaded_predictor(model_folder, folds, checkpoint)
    check_exportable(predictor, trainer)
    description = model_description(predictor, {"dataset": model_folder.parent.name, "trainer": trainer,
                                                 "plans": plans, "configuration": configuration,
                                                 "folds": folds, "checkpoint": checkpoint})
    output.mkdir(parents=True, exist_ok=True)
    example = example_slabs(description)
    lines = []
    for fold, parameters in zip(description["folds"], predictor.list_of_parameters):
        path = output / fold["file"]
        fold.update(export_fold(predictor, parameters, path, example, opset or DEFAULT_OPSET))
        difference = fold["largest_difference_to_torch"]
        lines.append(f"fold {fold['fold']}: {path} ({path.stat().st_size / 2 ** 20:.1f} MiB, opset {fold['opset']}, "
                     f"{fold['exporter']} exporter; ONNX Runtime vs torch: {difference:.1e} logit)")
    c, s, (h, w) = description["input_channels"], description["slab_size"], description["tile"]
    axis = description["slab_axis"]
    lines.append(f"input '{INPUT_NAME}': (slices, {c}, {s}, {h}, {w}) float32 -> output 'logits': (slices, "
                 f"{description['num_heads']}, {h}, {w}); slabs along axis {axis}, in-plane axes "
                 f"{plane_axes(axis)} of the preprocessed volume")
    lines.append(f"description: {write_model_description(output, description)}")
    for name in NNUNET_FILES:  # passed on to each prediction folder, for nnU-Net's evaluation and ensembling
        shutil.copyfile(model_folder / name, output / name)
    lines.append(f"predict with: nnunet25d predict-onnx -i INPUT_FOLDER -o OUTPUT_FOLDER -m {output}")
    return lines
