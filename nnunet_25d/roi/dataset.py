"""``nnunet25d make-roi-dataset``: an nnU-Net raw dataset of one scale's ROI crops of another dataset's cases.

By default the fields of view are placed from each image alone (:mod:`~nnunet_25d.roi.body`,
:mod:`~nnunet_25d.roi.placement`): the body box of every case, the fractions of it learned from the labels of the
training cases only (all labelled cases, or with ``fold`` the training cases of nnU-Net's split of that fold), and
then the same fractions on every case — training, validation and the source's ``imagesTs`` alike. The fractions,
the threshold and the cases they were learned from are stored in ``roi.json`` and reused unchanged. With
``from_label`` (the oracle ablation) each case's crop is its own label's box grown by margins instead.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_25d.errors import DatasetNotFoundError, UserError
from nnunet_25d.roi.body import BODY_DILATION_MM, BODY_EROSION_MM, body_box, body_threshold
from nnunet_25d.roi.crop import PAPER_SLICE_THICKNESS, ROI_SCALES, Box, foreground_box, roi_box, roi_of
from nnunet_25d.roi.placement import SCALES, Fractions, NoTargetError, learn_fields_of_view, place

ROI_FILE = "roi.json"
IMAGE_PLACEMENT, ORACLE_PLACEMENT = "image", "label (oracle)"


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


def roi_dataset_name(source: Path, target_id: int, scale: str, oracle: bool = False) -> str:
    """``Dataset<id>_<Name>ROI<Scale>``, ``...Oracle`` where the label placed the crops."""
    return f"Dataset{target_id:03d}_{source.name.split('_', 1)[1]}ROI{scale.capitalize()}{'Oracle' if oracle else ''}"


def case_images(source: Path, case: str, channels: int, ending: str, split: str = "Tr") -> list[Path]:
    return [source / f"images{split}" / f"{case}_{c:04d}{ending}" for c in range(channels)]


def case_names(folder: Path, ending: str) -> list[str]:
    """The cases of an nnU-Net images folder (from the file names of channel 0; nothing is opened)."""
    suffix = f"_0000{ending}"
    return sorted(p.name[:-len(suffix)] for p in folder.glob(f"*{suffix}")) if folder.is_dir() else []


def learning_cases(cases: list[str], fold: int | None) -> list[str]:
    """The cases whose labels teach the fields of view: all of them, or the training cases of nnU-Net's own
    5-fold split of these case names (what ``nnUNetv2_train`` writes to the ROI dataset's splits_final.json)."""
    if fold is None:
        return list(cases)
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    if not 0 <= fold < 5 or len(cases) < 5:
        raise UserError(f"--fold {fold}: nnU-Net's split has folds 0-4 and needs at least 5 cases ({len(cases)} here)")
    return sorted(generate_crossval_split(sorted(cases), seed=12345, n_splits=5)[fold]["train"])


def image_geometry(path: Path) -> tuple[sitk.Image, np.ndarray, tuple[float, float, float]]:
    image = sitk.ReadImage(str(path))
    if image.GetDimension() != 3:
        raise UserError(f"{path.name}: ROI crops need 3D images, this one is {image.GetDimension()}D")
    return image, sitk.GetArrayFromImage(image), tuple(image.GetSpacing()[::-1])  # type: ignore[return-value]


def body_of(path: Path, body: dict) -> tuple[Box, tuple[int, int, int]]:
    """(body box, array shape) of the image at ``path`` (channel 0), with ``body``'s threshold and windows."""
    _, array, spacing = image_geometry(path)
    threshold = body["threshold"] if body["threshold"] is not None else body_threshold(array, body["modality"])
    return body_box(array, spacing, threshold, body["erosion_mm"], body["dilation_mm"]), array.shape


def fields_of_view(image_path: Path, roi: dict) -> dict[str, Box]:
    """The small, middle and large fields of view of one image from the image alone, with an image-placed ROI
    dataset's stored body settings and fractions (``roi.json``)."""
    if roi.get("placement") != IMAGE_PLACEMENT:
        raise UserError(f"{roi['source']}'s ROI dataset was placed by the labels ({roi.get('placement')}): it has no "
                        f"fractions to place a field of view on an image")
    body, shape = body_of(image_path, roi["body"])
    return {scale: place(Fractions.from_json(roi["fractions"][scale]), body, shape) for scale in SCALES}


def learned_fractions(source: Path, cases: list[str], ending: str, bodies: dict[str, Box]) -> dict[str, Fractions]:
    """The fields of view learned from the labels of ``cases`` (only these labels are opened)."""
    pairs = []
    for case in cases:
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(source / "labelsTr" / f"{case}{ending}")))
        pairs.append((bodies[case], foreground_box(labels)))
    try:
        return learn_fields_of_view(pairs)
    except NoTargetError as error:
        raise UserError(f"{source.name}: {error}") from None


def write_crops(source: Path, target: Path, case: str, split: str, channels: int, ending: str, box: Box,
                thickness: float) -> None:
    """Write ``case``'s images (and in ``Tr`` its labels) cropped to ``box`` into ``target``."""
    labels = None
    if split == "Tr":
        labels = sitk.ReadImage(str(source / "labelsTr" / f"{case}{ending}"))
    for c, path in enumerate(case_images(source, case, channels, ending, split)):
        image, roi_labels = roi_of(sitk.ReadImage(str(path)), labels if c == 0 else None, box, thickness)
        sitk.WriteImage(image, str(target / f"images{split}" / f"{case}_{c:04d}{ending}"), useCompression=True)
        if roi_labels is not None:
            sitk.WriteImage(roi_labels, str(target / "labelsTr" / f"{case}{ending}"), useCompression=True)


def write_roi_dataset(dataset: str, target_id: int, scale: str = "middle",
                      margin_mm: tuple[float, float, float] | None = None,
                      slice_thickness: float = PAPER_SLICE_THICKNESS, raw: Path | None = None,
                      from_label: bool = False, fold: int | None = None,
                      threshold: float | None = None) -> Path:
    """Write ``Dataset<target_id>_<Name>ROI<Scale>`` beside ``dataset``: every case (``imagesTr`` and, where the
    source has them, ``imagesTs``) cropped to its field of view at ``scale`` and resampled to ``slice_thickness``
    mm slices. The field of view is placed from the image (module docstring; ``threshold`` overrides the
    modality's), or with ``from_label`` (the oracle) around the case's own label box grown by the scale's margins
    (``margin_mm`` overrides them). ``roi.json`` records how, and each case's box in the source's voxels. Returns
    the new folder."""
    raw = raw_folder(raw)
    source = source_dataset(raw, dataset)
    if from_label:
        if margin_mm is None and scale not in ROI_SCALES:
            raise UserError(f"unknown ROI scale {scale!r}: use one of {', '.join(ROI_SCALES)} or give --margin-mm")
        margin_mm = margin_mm if margin_mm is not None else ROI_SCALES[scale]
    else:
        if margin_mm is not None:
            raise UserError("--margin-mm grows the label's box: it needs --roi-from-label (the oracle ablation)")
        if scale not in SCALES:
            raise UserError(f"unknown ROI scale {scale!r}: use one of {', '.join(SCALES)}")
    if slice_thickness <= 0:
        raise UserError(f"slice thickness must be > 0 mm, got {slice_thickness}")
    target = raw / roi_dataset_name(source, target_id, scale, from_label)
    if any(raw.glob(f"Dataset{target_id:03d}_*")):
        raise UserError(f"dataset ID {target_id} is taken under {raw}: choose another --target-id or delete "
                        f"{next(raw.glob(f'Dataset{target_id:03d}_*'))}")
    description = json.loads((source / "dataset.json").read_text())
    ending, channels = description["file_ending"], len(description["channel_names"])
    cases = {"Tr": case_names(source / "imagesTr", ending), "Ts": case_names(source / "imagesTs", ending)}
    roi: dict = {"source": source.name, "scale": scale, "slice_thickness": slice_thickness}
    if from_label:
        roi |= {"placement": ORACLE_PLACEMENT, "margin_mm": list(margin_mm)}  # type: ignore[arg-type]
        boxes = {"Tr": {case: label_placed_box(source, case, ending, margin_mm) for case in cases["Tr"]}, "Ts": {}}
    else:
        body = {"modality": description["channel_names"]["0"], "threshold": threshold,
                "erosion_mm": BODY_EROSION_MM, "dilation_mm": BODY_DILATION_MM}
        bodies, shapes = {}, {}
        for split in ("Tr", "Ts"):
            for case in tqdm(cases[split], desc=f"body boxes ({split})", unit="case"):
                bodies[case], shapes[case] = body_of(case_images(source, case, channels, ending, split)[0], body)
        learned_from = learning_cases(cases["Tr"], fold)
        fractions = learned_fractions(source, learned_from, ending, bodies)
        roi |= {"placement": IMAGE_PLACEMENT, "body": body, "fold": fold, "learned_from": learned_from,
                "fractions": {name: f.as_json() for name, f in fractions.items()}}
        boxes = {split: {case: place(fractions[scale], bodies[case], shapes[case]) for case in cases[split]}
                 for split in ("Tr", "Ts")}
    for split in ("Tr", "Ts"):
        if boxes[split]:
            (target / f"images{split}").mkdir(parents=True)
    (target / "labelsTr").mkdir(parents=True, exist_ok=True)
    for split in ("Tr", "Ts"):
        for case, box in tqdm(boxes[split].items(), desc=f"ROI {scale} ({split})", unit="case"):
            write_crops(source, target, case, split, channels, ending, box, slice_thickness)
    (target / "dataset.json").write_text(json.dumps({**description, "numTraining": len(cases["Tr"])}, indent=2))
    roi |= {split_key: {case: {"start": list(box.start), "stop": list(box.stop)} for case, box in boxes[split].items()}
            for split, split_key in (("Tr", "cases"), ("Ts", "test_cases"))}
    (target / ROI_FILE).write_text(json.dumps(roi, indent=2))
    return target


def label_placed_box(source: Path, case: str, ending: str, margin_mm: tuple[float, float, float]) -> Box:
    """The oracle's field of view: the case's own label box grown by ``margin_mm``."""
    labels = sitk.ReadImage(str(source / "labelsTr" / f"{case}{ending}"))
    if labels.GetDimension() != 3:
        raise UserError(f"{case}: ROI crops need 3D images, this one is {labels.GetDimension()}D")
    array = sitk.GetArrayFromImage(labels)
    return roi_box(foreground_box(array), array.shape, tuple(labels.GetSpacing()[::-1]), margin_mm)
