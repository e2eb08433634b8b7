"""Case identifiers as nnU-Net names them: the file name without its (possibly double) ending."""
from __future__ import annotations

from pathlib import Path


def case_id(file_name: str) -> str:
    name = Path(file_name).name
    for ending in (".nii.gz", ".nrrd", ".mha", ".nii", ".png", ".tif", ".tiff"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return name.rsplit(".", 1)[0]
