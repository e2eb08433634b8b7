"""What the benchmark checks of a raw dataset before nnU-Net plans it: every image and label file ends with
dataset.json's ``file_ending`` (nnU-Net lists files by it and silently leaves out a case saved otherwise, e.g. one
``.nii`` in a ``.nii.gz`` dataset). nnU-Net's own integrity check (``--verify_dataset_integrity``: case counts,
channels, label values against dataset.json, shapes and spacings) runs with the planning."""
from __future__ import annotations

from pathlib import Path

from nnunet_25d.errors import UserError

VERIFY_FLAG = "--verify_dataset_integrity"
FOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")


def misnamed_files(raw_dataset: Path, file_ending: str) -> list[Path]:
    """Files in the dataset's image and label folders that do not end with ``file_ending`` (hidden files aside)."""
    found = []
    for name in FOLDERS:
        folder = raw_dataset / name
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir()
                            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(file_ending))
    return found


def check_file_endings(raw_dataset: Path, dataset_json: dict) -> None:
    """Raise a one-line :class:`UserError` naming the first file (and how many) that nnU-Net would not see."""
    ending = dataset_json.get("file_ending")
    if not ending or "dataset" in dataset_json:  # no ending: nnU-Net's check says so; "dataset": files listed
        return
    wrong = misnamed_files(raw_dataset, ending)
    if wrong:
        more = f" and {len(wrong) - 1} more" if len(wrong) > 1 else ""
        raise UserError(f"{wrong[0]}{more} do{'es' if not more else ''} not end with dataset.json's file_ending "
                        f"{ending!r}: nnU-Net lists cases by it and would leave {'it' if not more else 'them'} out "
                        f"without a word; save {'it' if not more else 'them'} as {ending} (or move "
                        f"{'it' if not more else 'them'} out of {raw_dataset})")


def with_verification(command: list[str]) -> list[str]:
    """nnU-Net's planning command with its integrity check (label values, channels, shapes, case count)."""
    if command[:1] == ["nnUNetv2_plan_and_preprocess"] and VERIFY_FLAG not in command:
        return [*command, VERIFY_FLAG]
    return command
