"""The JSON written beside the ONNX files: everything inference needs, read without nnU-Net's plans classes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nnunet_25d.errors import UserError
from nnunet_25d.files import write_text_atomically

DESCRIPTION_FILE = "nnunet25d_model.json"
# the trained model folder's files that nnU-Net's evaluation and ensembling read from a prediction folder
NNUNET_FILES = ("dataset.json", "plans.json")
FORMAT = "nnunet25d-onnx"
FORMAT_VERSION = 1
# normalisation schemes the runtime reproduces (nnU-Net's default ones)
NORMALIZATION_SCHEMES = ("ZScoreNormalization", "CTNormalization", "NoNormalization", "RescaleTo01Normalization",
                         "RGBTo01Normalization")
REQUIRED_KEYS = ("folds", "input_channels", "num_heads", "slab_size", "slab_axis", "tile", "step_size",
                 "gaussian_sigma_scale", "mirror_axes", "spacing", "transpose_forward", "transpose_backward",
                 "normalization", "resampling", "labels", "regions_class_order", "file_ending")


class ModelDescriptionError(UserError, FileNotFoundError):
    """A model folder without a readable description, or one this runtime cannot run."""


def read_model_description(model_dir: Path) -> dict[str, Any]:
    """The model folder's description, checked for what the runtime relies on; one message naming the fix."""
    path = Path(model_dir) / DESCRIPTION_FILE
    if not Path(model_dir).is_dir():
        raise ModelDescriptionError(f"no model folder at {model_dir}: write one with `nnunet25d export -d DATASET "
                                    f"-c 2d -tr TRAINER -f FOLDS -o {model_dir}`")
    if not path.is_file():
        raise ModelDescriptionError(f"{model_dir} has no {DESCRIPTION_FILE}: it is not a folder written by "
                                    f"`nnunet25d export` (export the model again into it)")
    try:
        description = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelDescriptionError(f"{path} is not valid JSON ({error}): export the model again") from None
    if description.get("format") != FORMAT or description.get("version") != FORMAT_VERSION:
        raise ModelDescriptionError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} description (format "
                                    f"{description.get('format')!r}, version {description.get('version')!r}): "
                                    f"export the model again with this version of nnunet_25d")
    missing = [key for key in REQUIRED_KEYS if key not in description]
    if missing:
        raise ModelDescriptionError(f"{path} lacks {', '.join(missing)}: export the model again")
    absent = [fold["file"] for fold in description["folds"] if not (Path(model_dir) / fold["file"]).is_file()]
    if absent:
        raise ModelDescriptionError(f"{model_dir} lacks {', '.join(absent)} named in {DESCRIPTION_FILE}: export "
                                    f"the model again")
    return description


def write_model_description(model_dir: Path, description: dict[str, Any]) -> Path:
    path = Path(model_dir) / DESCRIPTION_FILE
    write_text_atomically(path, json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **description}, indent=2))
    return path
