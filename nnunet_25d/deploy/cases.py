"""The cases of an input folder, named as nnU-Net names them: ``CASE_0000.nii.gz``, ``CASE_0001.nii.gz`` ..."""
from __future__ import annotations

import re
from pathlib import Path

from nnunet_25d.deploy.preprocessing import ImageError


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
    wanted = list(range(channels))
    for case, files in found.items():
        if sorted(files) != wanted:
            names = ", ".join(f"{case}_{c:04d}{file_ending}" for c in wanted)
            have = ", ".join(p.name for _, p in sorted(files.items()))
            raise ImageError(f"case {case} has channel file(s) {have}; the model takes {channels} channel(s): "
                             f"{names}")
    return {case: [files[c] for c in wanted] for case, files in found.items()}
