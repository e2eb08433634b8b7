"""``nnunet25d make-roi-dataset``: an nnU-Net raw dataset of one scale's ROI crops of another dataset's cases."""
from __future__ import annotations

import json
import os
from pathlib import Path

import SimpleITK as sitk
from tqdm import tqdm

from nnunet_25d.errors import DatasetNotFoundError, UserError
from nnunet_25d.roi.crop import PAPER_SLICE_THICKNESS, ROI_SCALES, foreground_box, roi_box, roi_of

ROI_FILE = "roi.json"


def raw_folder(raw: Path | None = None) -> Path:
    folder = raw or os.environ.get("nnUNet_raw")
    if not folder:
        raise UserError("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw (or pass --raw)")
    return Path(folder)


def source_dataset(raw: Path, dataset: str) -> Path:
    """The ``DatasetXXX_Name`` folder of ``dataset`` (an ID or a name) under ``raw``."""
    name = dataset if dataset.startswith("Dataset") else None
    candidates = [raw / name] if name else sorted(raw.glob(f"Dataset{int(dataset):03d}_*"))
    found = [c for c in candidates if (c / "dataset.json").is_file()]
    if not found:
        raise DatasetNotFoundError(f"no raw dataset {dataset} with a dataset.json under {raw}")
    return found[0]


def roi_dataset_name(source: Path, target_id: int, scale: str) -> str:
    return f"Dataset{target_id:03d}_{source.name.split('_', 1)[1]}ROI{scale.capitalize()}"


def case_images(source: Path, case: str, channels: int, ending: str) -> list[Path]:
    return [source / "imagesTr" / f"{case}_{c:04d}{ending}" for c in range(channels)]


def write_roi_dataset(dataset: str, target_id: int, scale: str = "middle",
                      margin_mm: tuple[float, float, float] | None = None,
                      slice_thickness: float = PAPER_SLICE_THICKNESS, raw: Path | None = None) -> Path:
    """Write ``Dataset<target_id>_<Name>ROI<Scale>`` beside ``dataset``: every training case cropped to its
    foreground box grown by the scale's margins (``margin_mm`` overrides them) and resampled to
    ``slice_thickness`` mm slices, images and labels alike; ``roi.json`` records each case's box in the source's
    voxels. Returns the new folder."""
    raw = raw_folder(raw)
    source = source_dataset(raw, dataset)
    if margin_mm is None:
        if scale not in ROI_SCALES:
            raise UserError(f"unknown ROI scale {scale!r}: use one of {', '.join(ROI_SCALES)} or give --margin-mm")
        margin_mm = ROI_SCALES[scale]
    if slice_thickness <= 0:
        raise UserError(f"slice thickness must be > 0 mm, got {slice_thickness}")
    target = raw / roi_dataset_name(source, target_id, scale)
    if any(raw.glob(f"Dataset{target_id:03d}_*")):
        raise UserError(f"dataset ID {target_id} is taken under {raw}: choose another --target-id or delete "
                        f"{next(raw.glob(f'Dataset{target_id:03d}_*'))}")
    description = json.loads((source / "dataset.json").read_text())
    ending, channels = description["file_ending"], len(description["channel_names"])
    cases = sorted(p.name[:-len(ending)] for p in (source / "labelsTr").glob(f"*{ending}"))
    for sub in ("imagesTr", "labelsTr"):
        (target / sub).mkdir(parents=True)
    boxes = {}
    for case in tqdm(cases, desc=f"ROI {scale}", unit="case"):
        labels = sitk.ReadImage(str(source / "labelsTr" / f"{case}{ending}"))
        if labels.GetDimension() != 3:
            raise UserError(f"{case}: ROI crops need 3D images, this one is {labels.GetDimension()}D")
        array = sitk.GetArrayFromImage(labels)
        box = roi_box(foreground_box(array), array.shape, tuple(labels.GetSpacing()[::-1]), margin_mm)
        for c, path in enumerate(case_images(source, case, channels, ending)):
            image, roi_labels = roi_of(sitk.ReadImage(str(path)), labels if c == 0 else None, box, slice_thickness)
            sitk.WriteImage(image, str(target / "imagesTr" / f"{case}_{c:04d}{ending}"), useCompression=True)
            if roi_labels is not None:
                sitk.WriteImage(roi_labels, str(target / "labelsTr" / f"{case}{ending}"), useCompression=True)
        boxes[case] = {"start": list(box.start), "stop": list(box.stop)}
    (target / "dataset.json").write_text(json.dumps({**description, "numTraining": len(cases)}, indent=2))
    (target / ROI_FILE).write_text(json.dumps({
        "source": source.name, "scale": scale, "margin_mm": list(margin_mm), "slice_thickness": slice_thickness,
        "cases": boxes}, indent=2))
    return target
