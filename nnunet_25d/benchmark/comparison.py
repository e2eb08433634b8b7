"""Train, predict and evaluate several nnU-Net trainers on one dataset with nnU-Net's own commands, then report
(through the shared report engine, :mod:`nnunet_25d.report`)."""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nnunet_25d.benchmark.cases import case_id
from nnunet_25d.benchmark.matrix import RESOURCES_FILE
from nnunet_25d.inference.checkpoint_file import load_checkpoint_safely
from nnunet_25d.predict.command import ENGINE_LINE, PREDICT_COMMAND
from nnunet_25d.report.document import key_table, methods_section, reading_choice, results_sections, verdict
from nnunet_25d.report.figures import overview_figure, save
from nnunet_25d.report.load import read_other_cpu, record_other_cpu
from nnunet_25d.report.machine import this_machine
from nnunet_25d.report.metrics import DICE
from nnunet_25d.report.rows import ModelRow, Score, splits_of
from nnunet_25d.report.segmentation_figures import clear_figures, segmentation_section
from nnunet_25d.report.segmentations import ModelSegmentations, SplitFiles
from nnunet_25d.report.setting import ReportSetting, classes_of_dataset, schedules_of
from nnunet_25d.report.tables import cost_table, scores_table, write_scores_csv
from nnunet_25d.benchmark.runner import NNUNetRunner, this_run
from nnunet_25d.files import write_text_atomically


@dataclass(frozen=True)
class ModelSpec:
    label: str
    trainer: str
    configuration: str = "2d"
    epochs: int = 0  # for the progress bar only


@dataclass
class ModelResult:
    label: str
    trainer: str
    configuration: str
    test_dice: dict[str, float] = field(default_factory=dict)
    validation_dice: dict[str, float] = field(default_factory=dict)
    test_cases: dict[str, int] = field(default_factory=dict)  # per class: the cases behind the mean Dice
    validation_cases: dict[str, int] = field(default_factory=dict)
    seconds_per_epoch: float = float("nan")
    seconds_per_case: float = float("nan")
    parameters: int = 0
    fold: int = 0
    other_cpu: float = float("nan")  # most cores other work used during its training and test prediction
    cores: int | None = None
    model_folder: str = ""  # nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION (its fold's validation)
    raw_dataset: str = ""  # nnUNet_raw/DatasetXXX (images, labelsTr, imagesTs, labelsTs)
    engine: str = ""  # what ran the network of the test-set prediction
    stock_seconds_per_case: float = float("nan")  # nnU-Net 2d's baseline through nnUNetv2_predict


@dataclass
class DatasetPaths:
    name: str  # DatasetXXX_Name
    raw: Path
    preprocessed: Path
    results: Path

    @property
    def dataset_id(self) -> str:
        return str(int(self.name[len("Dataset"):].split("_", 1)[0]))

    def model_folder(self, spec: ModelSpec, plans: str = "nnUNetPlans") -> Path:
        return self.results / self.name / f"{spec.trainer}__{plans}__{spec.configuration}"


def labels_by_value(dataset_json: dict) -> dict[str, str]:
    """{"1": "tube", ...} for the foreground labels (integer labels only)."""
    return {str(v): k for k, v in dataset_json["labels"].items() if isinstance(v, int) and v > 0}


def dice_from_summary(summary_file: Path, names: dict[str, str]) -> dict[str, float]:
    mean = json.loads(summary_file.read_text())["mean"]
    return {names.get(key, key): float(value["Dice"]) for key, value in mean.items() if key in names}


def summary_keys(dataset_json: dict) -> dict[str, str]:
    """nnU-Net's label keys in summary.json (\"1\", or \"(1, 2)\" for a region) -> the dataset's class names."""
    keys = {}
    for name, value in dataset_json["labels"].items():
        key = str(tuple(value)) if isinstance(value, (list, tuple)) else str(value)
        if key != "0" and name != "ignore":
            keys[key] = name
    return keys


def case_dice_from_summary(summary_file: Path, dataset_json: dict) -> dict[str, dict[str, float]]:
    """Class -> case -> nnU-Net's Dice (NaN: reference and prediction both empty), from ``metric_per_case``."""
    keys, dice = summary_keys(dataset_json), {}
    for case in json.loads(summary_file.read_text())["metric_per_case"]:
        for key, metrics in case["metrics"].items():
            if key in keys:
                dice.setdefault(keys[key], {})[case_id(case["reference_file"])] = float(metrics["Dice"])
    return dice


def cases_from_summary(summary_file: Path, names: dict[str, str]) -> dict[str, int]:
    """Per class, the cases behind nnU-Net's mean Dice (its mean leaves out NaN: reference and prediction empty)."""
    counts = dict.fromkeys(names.values(), 0)
    for case in json.loads(summary_file.read_text())["metric_per_case"]:
        for key, metrics in case["metrics"].items():
            if key in names and not math.isnan(float(metrics["Dice"])):
                counts[names[key]] += 1
    return counts


def training_curves(checkpoint: dict) -> dict[str, list[float]]:
    logging = checkpoint["logging"]
    return {key: [float(v) for v in logging[key]] for key in ("train_losses", "val_losses", "ema_fg_dice")}


def seconds_per_epoch(checkpoint: dict) -> float:
    """Mean epoch duration; the first epoch (loader start, warm-up) is left out when there are others."""
    logging = checkpoint["logging"]
    durations = np.subtract(logging["epoch_end_timestamps"], logging["epoch_start_timestamps"])
    return float(np.mean(durations[1:] if len(durations) > 1 else durations))


def count_parameters(checkpoint: dict) -> int:
    """Parameters of the checkpoint's network, each tensor once (DNA's decoder holds the encoder, so the state
    dict lists the encoder's weights twice)."""
    seen, total = set(), 0
    for value in checkpoint["network_weights"].values():
        if value.is_floating_point() and value.data_ptr() not in seen:
            seen.add(value.data_ptr())
            total += value.numel()
    return total


def train_log_name(spec: ModelSpec, fold: int) -> str:
    return f"train_{spec.trainer}_{spec.configuration}_fold{fold}"


def predict_log_name(spec: ModelSpec) -> str:
    return f"predict_{spec.trainer}_{spec.configuration}"


def train(runner: NNUNetRunner, paths: DatasetPaths, spec: ModelSpec, fold: int) -> Path:
    """nnUNetv2_train with --npz; finished folds are skipped, interrupted ones resumed with --c."""
    fold_dir = paths.model_folder(spec) / f"fold_{fold}"
    if (fold_dir / "checkpoint_final.pth").exists() and (fold_dir / "validation" / "summary.json").exists():
        return fold_dir
    args = ["nnUNetv2_train", paths.dataset_id, spec.configuration, str(fold), "-tr", spec.trainer,
            "-device", runner.device, "--npz"]
    if (fold_dir / "checkpoint_latest.pth").exists() or (fold_dir / "checkpoint_final.pth").exists():
        args.append("--c")
    runner.run(args, train_log_name(spec, fold), training=True, total_epochs=spec.epochs or None)
    return fold_dir


def record_training_contention(runner: NNUNetRunner, paths: DatasetPaths, specs: list[ModelSpec], fold: int) -> None:
    """Keep the other work's CPU each training of this run saw next to its checkpoints (the benchmark's resource
    record), so a rerun that skips the training still reports it."""
    for spec in specs:
        peak = runner.other_cpu.get(train_log_name(spec, fold))
        if peak is not None:
            record_other_cpu(paths.model_folder(spec) / f"fold_{fold}" / RESOURCES_FILE, peak)


def predict_startup_seconds(runner: NNUNetRunner) -> float:
    """Wall time of nnUNetv2_predict's imports, subtracted from prediction timings."""
    return runner.run(["nnUNetv2_predict", "-h"], "predict_startup")


def predict_and_evaluate(runner: NNUNetRunner, paths: DatasetPaths, spec: ModelSpec, fold: int, out_root: Path,
                         startup: float, save_probabilities: bool = False
                         ) -> tuple[dict[str, float], dict[str, int], float]:
    """(test Dice per class, cases behind each, seconds per case) with ``nnunet25d predict`` (nnU-Net's own predictor for models
    that are not slab models) and nnUNetv2_evaluate_folder; predictions in
    ``out_root/<trainer>__<configuration>`` (with ``.npz`` probabilities for ensembling if asked)."""
    labels = paths.raw / paths.name / "labelsTs"
    out = out_root / f"{spec.trainer}__{spec.configuration}"
    per_case = timed_test_prediction(runner, paths, spec, fold, out, PREDICT_COMMAND, predict_log_name(spec),
                                     startup, ["--save_probabilities"] if save_probabilities else [])
    if np.isnan(per_case):  # no test images
        return {}, {}, per_case
    if not labels.is_dir():
        return {}, {}, per_case
    dataset_json = json.loads((paths.raw / paths.name / "dataset.json").read_text())
    summary = out / "summary.json"
    runner.run(["nnUNetv2_evaluate_folder", str(labels), str(out), "-djfile", str(out / "dataset.json"),
                "-pfile", str(out / "plans.json"), "-o", str(summary), "-np", "1"],
               f"evaluate_{spec.trainer}_{spec.configuration}")
    names = labels_by_value(dataset_json)
    return dice_from_summary(summary, names), cases_from_summary(summary, names), per_case


def prediction_engine(runner: NNUNetRunner, spec: ModelSpec) -> str:
    """The engine ``nnunet25d predict`` said it ran the network on, from the prediction's log ("" if unsaid)."""
    log = runner.log_dir / f"{predict_log_name(spec)}.log"
    prefix = ENGINE_LINE.format("")
    said = [line[len(prefix):].strip() for line in this_run(log.read_text(errors="replace").splitlines())
            if line.startswith(prefix)] if log.is_file() else []
    return said[-1] if said else ""


def count_test_cases(paths: DatasetPaths) -> int:
    """Cases in the dataset's imagesTs (0 without one)."""
    images = paths.raw / paths.name / "imagesTs"
    if not images.is_dir():
        return 0
    file_ending = json.loads((paths.raw / paths.name / "dataset.json").read_text())["file_ending"]
    return len({p.name.rsplit("_", 1)[0] for p in images.glob(f"*{file_ending}")})


def timed_test_prediction(runner: NNUNetRunner, paths: DatasetPaths, spec: ModelSpec, fold: int, out: Path,
                          program: tuple[str, ...], log_name: str, startup: float, extra: list[str]) -> float:
    """Predict the test set into ``out`` with ``program`` (nnU-Net's predict arguments); seconds per case, start-up
    subtracted (nan without test cases)."""
    n_cases = count_test_cases(paths)
    if n_cases == 0:
        return float("nan")
    shutil.rmtree(out, ignore_errors=True)
    wall = runner.run([*program, "-i", str(paths.raw / paths.name / "imagesTs"), "-o", str(out), "-d",
                       paths.dataset_id, "-c", spec.configuration, "-tr", spec.trainer, "-f", str(fold), "-device",
                       runner.device, "-npp", "1", "-nps", "1", "--disable_progress_bar", *extra], log_name)
    return max(wall - startup, 0.0) / n_cases


def stock_2d_seconds_per_case(runner: NNUNetRunner, paths: DatasetPaths, spec: ModelSpec, fold: int,
                              out_root: Path, startup: float) -> float:
    """nnU-Net 2d's test-set prediction as users run it (``nnUNetv2_predict``, PyTorch): seconds per case."""
    return timed_test_prediction(runner, paths, spec, fold,
                                 out_root / f"{spec.trainer}__{spec.configuration}__nnUNetv2_predict",
                                 ("nnUNetv2_predict",), f"{predict_log_name(spec)}_stock", startup, [])


def collect(paths: DatasetPaths, spec: ModelSpec, fold: int) -> tuple[ModelResult, dict[str, list[float]]]:
    fold_dir = paths.model_folder(spec) / f"fold_{fold}"
    checkpoint = load_checkpoint_safely(fold_dir / "checkpoint_final.pth")  # plain data: nothing in it runs
    dataset_json = json.loads((paths.model_folder(spec) / "dataset.json").read_text())
    other_cpu, cores = read_other_cpu(fold_dir / RESOURCES_FILE)
    summary, names = fold_dir / "validation" / "summary.json", labels_by_value(dataset_json)
    result = ModelResult(spec.label, spec.trainer, spec.configuration,
                         validation_dice=dice_from_summary(summary, names),
                         validation_cases=cases_from_summary(summary, names),
                         seconds_per_epoch=seconds_per_epoch(checkpoint),
                         parameters=count_parameters(checkpoint), fold=fold, other_cpu=other_cpu, cores=cores,
                         model_folder=str(paths.model_folder(spec)), raw_dataset=str(paths.raw / paths.name))
    return result, training_curves(checkpoint)


def add_other_cpu(result: ModelResult, peak: float | None) -> None:
    """Fold a further run's peak other-work CPU (e.g. during the test prediction) into the result's."""
    if peak is not None and not math.isnan(peak):
        result.other_cpu = peak if math.isnan(result.other_cpu) else max(result.other_cpu, peak)
        result.cores = result.cores or os.cpu_count()


def is_nnunet_baseline(trainer: str) -> bool:
    """nnU-Net's own trainer (with or without a schedule suffix): what the 2.5D models are compared with."""
    return trainer == "nnUNetTrainer" or trainer.startswith("nnUNetTrainer_")


def model_row(result: ModelResult, curves: dict[str, list[float]] | None = None,
              baseline: bool | None = None) -> ModelRow:
    """The report engine's row: Dice per class on the test set ("test") and the fold's validation ("cv")."""
    scores = [Score(split, DICE.key, name, value, per_fold={result.fold: value}, n_cases=cases.get(name))
              for split, dice, cases in (("test", result.test_dice, result.test_cases),
                                         ("cv", result.validation_dice, result.validation_cases))
              for name, value in dice.items()]
    return ModelRow(result.label, result.trainer, result.configuration, scores, result.seconds_per_epoch,
                    result.seconds_per_case, result.parameters, other_cpu=result.other_cpu, cores=result.cores,
                    curves=curves or {}, folds=(result.fold,), engine=result.engine,
                    stock_seconds_per_case=result.stock_seconds_per_case,
                    baseline=is_nnunet_baseline(result.trainer) if baseline is None else baseline)


def report_setting(paths: DatasetPaths, specs: list[ModelSpec], fold: int, subtitle: str,
                   device: str = "cpu") -> ReportSetting:
    dataset_json = json.loads((paths.raw / paths.name / "dataset.json").read_text())
    return ReportSetting(paths.name, schedules_of([s.trainer for s in specs]), (fold,),
                         classes_of_dataset(dataset_json), (this_machine(cuda=device == "cuda"),),
                         dataset_json.get("description", ""),
                         "test-set prediction, start-up subtracted", subtitle)


def markdown_table(results: list[ModelResult], baseline: ModelResult | None = None) -> str:
    """Dice per class (test set where there is one, else validation) and the cost table, for scripts that make
    their own report."""
    rows = [model_row(r, baseline=None if baseline is None else r is baseline) for r in results]
    split = "test" if any(r.test_dice for r in results) else "cv"
    return f"{scores_table(rows, split, [DICE])}\n\n{cost_table(rows)}"


def segmentation_inputs(results: list[ModelResult], split: str, title: str, predictions: Path
                        ) -> tuple[list[ModelSegmentations], SplitFiles, dict] | None:
    """The models' per-case Dice and label images on ``split`` ("test": ``predictions/<trainer>__<configuration>``
    with nnUNetv2_evaluate_folder's summary.json; "cv": the fold's ``validation`` folder), the references and
    images of the raw dataset, and its dataset.json; None where a model's files are not known or not there."""
    if not results or not all(r.raw_dataset and r.model_folder for r in results):
        return None
    raw = Path(results[0].raw_dataset)
    dataset_json = json.loads((raw / "dataset.json").read_text())
    ending = dataset_json["file_ending"]
    models = []
    for r in results:
        folder = predictions / f"{r.trainer}__{r.configuration}" if split == "test" else \
            Path(r.model_folder) / f"fold_{r.fold}" / "validation"
        if not (folder / "summary.json").is_file():
            return None
        dice = case_dice_from_summary(folder / "summary.json", dataset_json)
        cases = {case for by_case in dice.values() for case in by_case}
        models.append(ModelSegmentations(r.label, is_nnunet_baseline(r.trainer), dice,
                                         {case: folder / f"{case}{ending}" for case in cases}))
    labels, images = (raw / "labelsTs", raw / "imagesTs") if split == "test" else (raw / "labelsTr", raw / "imagesTr")
    cases = sorted({case for m in models for case in m.files})
    return models, SplitFiles(split, title, {c: labels / f"{c}{ending}" for c in cases},
                              {c: images / f"{c}_0000{ending}" for c in cases}), dataset_json


def write_report(results: list[ModelResult], curves: dict[str, dict[str, list[float]]], out_dir: Path,
                 setting: ReportSetting, figures: str = "key", predictions: Path | None = None) -> str:
    """``report.md``, ``results.csv``, ``results.json``, ``report.png`` and the segmentation figures into
    ``out_dir``; returns the Markdown. It reads top-down: the verdict, the key table (the test set where there is
    one), the overview figure, "What the models segment" (``figures``: none | key | all; test-set predictions in
    ``predictions``, by default the ``predictions`` folder beside ``out_dir``, the demo's layout), the other
    tables, and Methods at the end."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [model_row(r, curves.get(r.label)) for r in results]
    splits, metrics = splits_of(rows), [DICE]
    split = reading_choice(metrics, splits)[0]
    section, figure_methods = "", ""
    inputs = segmentation_inputs(results, split, setting.split_title(split),
                                 predictions or out_dir.parent / "predictions")
    if inputs is not None:
        section, figure_methods = segmentation_section(*inputs, out_dir, figures)
    else:
        clear_figures(out_dir)
    markdown = "\n".join([verdict(f"{setting.dataset}: {setting.subtitle}", rows, setting, metrics, splits),
                          key_table(rows, setting, metrics, split), "![report](report.png)", "",
                          *([section] if section else []),
                          results_sections(rows, setting, metrics, splits, skip=split),
                          methods_section(rows, setting, splits, [figure_methods] if section else [])])
    write_text_atomically(out_dir / "report.md", markdown)
    write_text_atomically(out_dir / "results.json", json.dumps([asdict(r) for r in results], indent=2))
    write_scores_csv(rows, metrics, out_dir / "results.csv")
    save(overview_figure(rows, setting, metrics, splits), out_dir / "report.png")
    return markdown
