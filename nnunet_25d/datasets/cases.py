"""The cases of an input folder, named as nnU-Net names them: ``CASE_0000.nii.gz``, ``CASE_0001.nii.gz`` ..."""
from __future__ import annotations

import re
from pathlib import Path

from nnunet_25d.errors import ImageError, UserError


# what SimpleITK and nnU-Net's readers take: a file with one of these endings is an image, whatever else it is named
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".bmp", ".tif", ".tiff", ".jpg")


def looks_like_an_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_ENDINGS)


def cases_in(folder: Path, file_ending: str, channels: int) -> dict[str, list[Path]]:
    """Case identifier -> its channel files in order; one message for a folder without cases or a case whose
    channels do not match the model's."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"input folder {folder} does not exist")
    pattern = re.compile(rf"^(.+)_(\d{{4}}){re.escape(file_ending)}$")
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.name)
        if match:
            found.setdefault(match.group(1), {})[int(match.group(2))] = path
    if not found:
        raise ImageError(f"no images named CASE_0000{file_ending} in {folder} (nnU-Net's naming: one file per "
                         f"channel, CASE_XXXX{file_ending})")
    strays = sorted(p.name for p in folder.iterdir() if p.is_file() and looks_like_an_image(p.name)
                    and not pattern.match(p.name))
    if strays:
        raise ImageError(f"{len(strays)} image file(s) in {folder} are not named CASE_XXXX{file_ending}, the "
                         f"model's file ending and nnU-Net's channel naming, and would be left out: "
                         f"{', '.join(strays[:3])}{' ...' if len(strays) > 3 else ''} (convert or rename them)")
    wanted = list(range(channels))
    for case, files in found.items():
        if sorted(files) != wanted:
            names = ", ".join(f"{case}_{c:04d}{file_ending}" for c in wanted)
            have = ", ".join(p.name for _, p in sorted(files.items()))
            raise ImageError(f"case {case} has channel file(s) {have}; the model takes {channels} channel(s): "
                             f"{names}")
    return {case: [files[c] for c in wanted] for case, files in found.items()}


def check_output_folder(input_folder: Path, output_folder: Path) -> None:
    """The output folder is neither the input folder nor inside it (a rerun would read its outputs as inputs)."""
    source, target = Path(input_folder).resolve(), Path(output_folder).resolve()
    if target == source or source in target.parents:
        raise UserError(f"the output folder {output_folder} is {'the input folder' if target == source else 'inside the input folder'} "
                        f"{input_folder}: choose a folder outside it (-o)")
