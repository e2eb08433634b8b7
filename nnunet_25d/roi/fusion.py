"""``nnunet25d ensemble-roi``: Mei et al.'s multi-scale ensemble over the cross-validation of models trained on ROI
datasets (``make-roi-dataset``) of one source dataset — each model's probabilities mapped back onto the source
case's grid, averaged, the largest component of each class kept, scored against the source labels.

An image-placed ROI dataset (the default of ``make-roi-dataset``) crops every case from its image alone, with
fractions learned from the labels of training cases: the fusion refuses a fold whose validation cases taught them.
A label-placed dataset (``--roi-from-label``) is the oracle: its crops know where the target is, and the summary
says so.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_25d.errors import UserError
from nnunet_25d.roi.dataset import IMAGE_PLACEMENT, ORACLE_PLACEMENT, ROI_FILE, raw_folder, source_dataset


@dataclass(frozen=True)
class RoiModel:
    """A model trained on an ROI dataset: the raw ROI dataset (images, ``roi.json``) and the model folder."""

    raw_dataset: Path
    model_folder: Path

    @property
    def roi(self) -> dict:
        return json.loads((self.raw_dataset / ROI_FILE).read_text())

    def probabilities(self, fold: int, case: str) -> np.ndarray:
        npz = self.model_folder / f"fold_{fold}" / "validation" / f"{case}.npz"
        if not npz.is_file():
            raise UserError(f"{npz} is missing: train fold {fold} of {self.model_folder.name} with --npz "
                            f"(or run `nnUNetv2_train ... {fold} --val --npz`)")
        return np.load(npz)["probabilities"].astype(np.float32)

    def roi_image(self, case: str, ending: str) -> sitk.Image:
        return sitk.ReadImage(str(self.raw_dataset / "imagesTr" / f"{case}_0000{ending}"))


def in_source_grid(probabilities: np.ndarray, roi_image: sitk.Image, source_image: sitk.Image) -> np.ndarray:
    """(K, z', y', x') probabilities on ``roi_image``'s grid -> (K, Z, Y, X) on ``source_image``'s (linear);
    outside the ROI every voxel is background (probability 1 for class 0)."""
    channels = []
    for k, channel in enumerate(probabilities):
        image = sitk.GetImageFromArray(np.ascontiguousarray(channel, dtype=np.float32))
        image.CopyInformation(roi_image)
        outside = 1.0 if k == 0 else 0.0
        resampled = sitk.Resample(image, source_image, sitk.Transform(), sitk.sitkLinear, outside, sitk.sitkFloat32)
        channels.append(sitk.GetArrayFromImage(resampled))
    return np.stack(channels)


def largest_component_per_class(segmentation: np.ndarray, classes: range) -> np.ndarray:
    """Each class keeps its largest connected component; its other voxels become background."""
    from acvl_utils.morphology.morphology_helper import remove_all_but_largest_component

    kept = segmentation.copy()
    for c in classes:
        mask = segmentation == c
        if mask.any():
            kept[mask & ~remove_all_but_largest_component(mask)] = 0
    return kept


def dice(prediction: np.ndarray, reference: np.ndarray, c: int) -> float:
    """Dice of class ``c``; NaN where neither holds it."""
    p, r = prediction == c, reference == c
    total = p.sum() + r.sum()
    return float("nan") if total == 0 else float(2 * (p & r).sum() / total)


def validation_cases(models: list[RoiModel], preprocessed: Path, fold: int) -> list[str]:
    """Fold ``fold``'s validation cases, the same in every ROI dataset (nnU-Net splits the same case names alike)."""
    cases = []
    for model in models:
        splits = preprocessed / model.raw_dataset.name / "splits_final.json"
        if not splits.is_file():
            raise UserError(f"{splits} is missing: nnU-Net writes it when the first fold of that dataset trains")
        cases.append(sorted(json.loads(splits.read_text())[fold]["val"]))
    if any(c != cases[0] for c in cases):
        raise UserError(f"fold {fold} holds different validation cases in the ROI datasets: their models cannot be "
                        f"fused case by case (make every ROI dataset from the same source cases)")
    return cases[0]


def placement(model: RoiModel) -> str:
    """How the model's ROI dataset placed its crops (datasets written before the image placement: the labels)."""
    return model.roi.get("placement", ORACLE_PLACEMENT)


def check_no_validation_label_taught(models: list[RoiModel], fold: int, cases: list[str]) -> None:
    """Refuse an image-placed ROI dataset whose fields of view were learned from a validation case's label."""
    for model in models:
        if placement(model) != IMAGE_PLACEMENT:
            continue
        taught = sorted(set(model.roi["learned_from"]) & set(cases))
        if taught:
            raise UserError(f"{model.raw_dataset.name}'s fields of view were learned from the labels of fold {fold}'s "
                            f"validation case(s) {', '.join(taught[:3])}{' ...' if len(taught) > 3 else ''}: make it "
                            f"with make-roi-dataset --fold {fold}")


def models_text(models: list[tuple[str, str, str]]) -> list[str]:
    return [":".join(model) for model in models]


def check_same_source(models: list[RoiModel], source: Path) -> None:
    for model in models:
        if model.roi["source"] != source.name:
            raise UserError(f"{model.raw_dataset.name} was cropped from {model.roi['source']}, not {source.name}")


def nnunet_folder(variable: str) -> Path:
    folder = os.environ.get(variable)
    if not folder:
        raise UserError(f"{variable} is not set: export {variable}=/path/to/{variable}")
    return Path(folder)


def trained_roi_models(raw: Path, models: list[tuple[str, str, str]], plans: str) -> list[RoiModel]:
    """The ROI models of ``models`` ((ROI dataset, trainer, configuration)), each trained and given once."""
    results = nnunet_folder("nnUNet_results")
    roi_models = []
    for dataset, trainer, configuration in models:
        folder = source_dataset(raw, dataset)
        model_folder = results / folder.name / f"{trainer}__{plans}__{configuration}"
        if not model_folder.is_dir():
            raise UserError(f"not trained: {model_folder}; train it with `nnUNetv2_train {dataset} {configuration} "
                            f"FOLD -tr {trainer} --npz`")
        roi_models.append(RoiModel(folder, model_folder))
    if len({(m.raw_dataset, m.model_folder) for m in roi_models}) < len(roi_models):
        raise UserError(f"a model is given twice: {', '.join(models_text(models))}")
    return roi_models


def fused_case(models: list[RoiModel], fold: int, case: str, source_image: sitk.Image, ending: str,
               classes: range) -> dict[str, np.ndarray]:
    """Each model's segmentation in the source geometry, their fusion and the fusion's largest components."""
    mapped = [in_source_grid(m.probabilities(fold, case), m.roi_image(case, ending), source_image) for m in models]
    fused = np.mean(mapped, axis=0).argmax(0)
    segmentations = {model_name(m): p.argmax(0) for m, p in zip(models, mapped)}
    return {**segmentations, "fusion": fused, "fusion + largest component": largest_component_per_class(fused, classes)}


def model_name(model: RoiModel) -> str:
    return f"{model.raw_dataset.name}/{model.model_folder.name}"


def fuse_roi_cross_validation(source: str, models: list[tuple[str, str, str]], folds: list[int],
                              plans: str = "nnUNetPlans", output: Path | None = None,
                              raw: Path | None = None) -> dict:
    """Fuse ``models`` ((ROI dataset, trainer, configuration)) over ``folds``: Dice per class of every model alone
    and of the fusion with and without the largest component, averaged over the cases. Writes the fused, largest-
    component segmentations (source geometry), ``summary.json`` and ``dice.md``; returns the summary."""
    raw = raw_folder(raw)
    source_folder = source_dataset(raw, source)
    roi_models = trained_roi_models(raw, models, plans)
    check_same_source(roi_models, source_folder)
    preprocessed = nnunet_folder("nnUNet_preprocessed")
    description = json.loads((source_folder / "dataset.json").read_text())
    ending, classes = description["file_ending"], range(1, len(description["labels"]))
    folder_name = "__".join(f"{dataset}_{trainer}_{configuration}" for dataset, trainer, configuration in models)
    default = nnunet_folder("nnUNet_results") / source_folder.name / "roi_ensembles" / folder_name
    out = Path(output) if output else default
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = []
    for fold in folds:
        cases = validation_cases(roi_models, preprocessed, fold)
        check_no_validation_label_taught(roi_models, fold, cases)
        jobs += [(fold, case) for case in cases]
    for fold, case in tqdm(jobs, desc="ROI ensemble", unit="case"):
        source_image = sitk.ReadImage(str(source_folder / "imagesTr" / f"{case}_0000{ending}"))
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(source_folder / "labelsTr" / f"{case}{ending}")))
        segmentations = fused_case(roi_models, fold, case, source_image, ending, classes)
        rows += [{"fold": fold, "case": case, "model": name, "class": c, "dice": dice(segmentation, reference, c)}
                 for name, segmentation in segmentations.items() for c in classes]
        written = sitk.GetImageFromArray(segmentations["fusion + largest component"].astype(np.uint8))
        written.CopyInformation(source_image)
        sitk.WriteImage(written, str(out / f"{case}{ending}"), useCompression=True)
    summary = {"source": source_folder.name, "models": [model_name(m) for m in roi_models],
               "placement": {model_name(m): placement(m) for m in roi_models}, "folds": list(folds),
               "cases": rows, "mean_dice": mean_dice(rows, description["labels"])}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "dice.md").write_text(dice_table(summary["mean_dice"]))
    return summary


def mean_dice(rows: list[dict], labels: dict) -> dict[str, dict[str, float]]:
    """{model: {label name: mean Dice over the cases where it is defined}}."""
    names = {v: k for k, v in labels.items() if isinstance(v, int)}
    means: dict[str, dict[str, float]] = {}
    for row in rows:
        means.setdefault(row["model"], {}).setdefault(names[row["class"]], [])  # type: ignore[arg-type]
    for model, per_class in means.items():
        for label in per_class:
            values = [r["dice"] for r in rows if r["model"] == model and names[r["class"]] == label
                      and not np.isnan(r["dice"])]
            per_class[label] = float(np.mean(values)) if values else float("nan")
    return means


def dice_table(means: dict[str, dict[str, float]]) -> str:
    labels = list(next(iter(means.values())))
    lines = ["| model | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {model} | " + " | ".join(f"{d:.3f}" for d in per_class.values()) + " |"
              for model, per_class in means.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RoiPrediction:
    """``nnUNetv2_predict --save_probabilities`` outputs of a model on an image-placed ROI dataset's ``imagesTs``."""

    raw_dataset: Path
    folder: Path

    @property
    def roi(self) -> dict:
        return json.loads((self.raw_dataset / ROI_FILE).read_text())

    def probabilities(self, case: str) -> np.ndarray:
        npz = self.folder / f"{case}.npz"
        if not npz.is_file():
            raise UserError(f"{npz} is missing: predict {self.raw_dataset.name}/imagesTs into {self.folder} with "
                            f"nnUNetv2_predict ... --save_probabilities")
        return np.load(npz)["probabilities"].astype(np.float32)

    def roi_image(self, case: str, ending: str) -> sitk.Image:
        return sitk.ReadImage(str(self.raw_dataset / "imagesTs" / f"{case}_0000{ending}"))


def fuse_roi_predictions(source: str, predictions: list[tuple[str, Path]], output: Path,
                         raw: Path | None = None) -> dict:
    """Mei et al.'s ensemble on new images: each ((image-placed ROI dataset, folder of its imagesTs predictions with
    probabilities)) mapped back onto the source's ``imagesTs`` grid, averaged, each class's largest component kept,
    written to ``output``. The crops were placed from the images alone; ``labelsTs`` (where present) is opened
    only to score the result afterwards. Returns the summary (also ``summary.json``, and ``dice.md`` with labels)."""
    raw = raw_folder(raw)
    source_folder = source_dataset(raw, source)
    items = [RoiPrediction(source_dataset(raw, dataset), Path(folder)) for dataset, folder in predictions]
    check_same_source(items, source_folder)  # type: ignore[arg-type]
    for item in items:
        if item.roi.get("placement") != IMAGE_PLACEMENT:
            raise UserError(f"{item.raw_dataset.name} was cropped around each case's label (the oracle): new images "
                            f"need an image-placed ROI dataset (make-roi-dataset without --roi-from-label)")
    description = json.loads((source_folder / "dataset.json").read_text())
    ending, classes = description["file_ending"], range(1, len(description["labels"]))
    cases = sorted(set.intersection(*(set(item.roi["test_cases"]) for item in items)))
    if not cases:
        raise UserError(f"the ROI datasets share no test case: {source_folder.name} has no imagesTs, or they were "
                        f"made before it had")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    names = [f"{item.raw_dataset.name}/{item.folder.name}" for item in items]
    for case in tqdm(cases, desc="ROI ensemble (test)", unit="case"):
        source_image = sitk.ReadImage(str(source_folder / "imagesTs" / f"{case}_0000{ending}"))
        mapped = [in_source_grid(item.probabilities(case), item.roi_image(case, ending), source_image)
                  for item in items]
        fused = np.mean(mapped, axis=0).argmax(0)
        segmentations = {**{name: p.argmax(0) for name, p in zip(names, mapped)}, "fusion": fused,
                         "fusion + largest component": largest_component_per_class(fused, classes)}
        written = sitk.GetImageFromArray(segmentations["fusion + largest component"].astype(np.uint8))
        written.CopyInformation(source_image)
        sitk.WriteImage(written, str(output / f"{case}{ending}"), useCompression=True)
        labels = source_folder / "labelsTs" / f"{case}{ending}"
        if labels.is_file():
            reference = sitk.GetArrayFromImage(sitk.ReadImage(str(labels)))
            rows += [{"case": case, "model": name, "class": c, "dice": dice(segmentation, reference, c)}
                     for name, segmentation in segmentations.items() for c in classes]
    summary = {"source": source_folder.name, "predictions": names, "cases": cases, "scores": rows,
               "mean_dice": mean_dice(rows, description["labels"]) if rows else {}}
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    if rows:
        (output / "dice.md").write_text(dice_table(summary["mean_dice"]))
    return summary
