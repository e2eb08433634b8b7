"""Train, predict and evaluate several nnU-Net trainers on one dataset with nnU-Net's own commands, then report."""
from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from nnunet_25d.runner import NNUNetRunner


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
    seconds_per_epoch: float = float("nan")
    seconds_per_case: float = float("nan")
    parameters: int = 0


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


def train(runner: NNUNetRunner, paths: DatasetPaths, spec: ModelSpec, fold: int) -> Path:
    """nnUNetv2_train with --npz; finished folds are skipped, interrupted ones resumed with --c."""
    fold_dir = paths.model_folder(spec) / f"fold_{fold}"
    if (fold_dir / "checkpoint_final.pth").exists() and (fold_dir / "validation" / "summary.json").exists():
        return fold_dir
    args = ["nnUNetv2_train", paths.dataset_id, spec.configuration, str(fold), "-tr", spec.trainer,
            "-device", runner.device, "--npz"]
    if (fold_dir / "checkpoint_latest.pth").exists() or (fold_dir / "checkpoint_final.pth").exists():
        args.append("--c")
    runner.run(args, f"train_{spec.trainer}_{spec.configuration}_fold{fold}", training=True,
               total_epochs=spec.epochs or None)
    return fold_dir


def predict_startup_seconds(runner: NNUNetRunner) -> float:
    """Wall time of nnUNetv2_predict's imports, subtracted from prediction timings."""
    return runner.run(["nnUNetv2_predict", "-h"], "predict_startup")


def predict_and_evaluate(runner: NNUNetRunner, paths: DatasetPaths, spec: ModelSpec, fold: int, out_root: Path,
                         startup: float, save_probabilities: bool = False) -> tuple[dict[str, float], float]:
    """(test Dice per class, seconds per case) with nnUNetv2_predict and nnUNetv2_evaluate_folder; predictions in
    ``out_root/<trainer>__<configuration>`` (with ``.npz`` probabilities for ensembling if asked)."""
    images, labels = paths.raw / paths.name / "imagesTs", paths.raw / paths.name / "labelsTs"
    dataset_json = json.loads((paths.raw / paths.name / "dataset.json").read_text())
    n_cases = len({p.name.rsplit("_", 1)[0] for p in images.glob(f"*{dataset_json['file_ending']}")}) \
        if images.is_dir() else 0
    if n_cases == 0:
        return {}, float("nan")
    out = out_root / f"{spec.trainer}__{spec.configuration}"
    shutil.rmtree(out, ignore_errors=True)
    wall = runner.run(["nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", paths.dataset_id,
                       "-c", spec.configuration, "-tr", spec.trainer, "-f", str(fold), "-device", runner.device,
                       "-npp", "1", "-nps", "1", "--disable_progress_bar"]
                      + (["--save_probabilities"] if save_probabilities else []),
                      f"predict_{spec.trainer}_{spec.configuration}")
    per_case = max(wall - startup, 0.0) / n_cases
    if not labels.is_dir():
        return {}, per_case
    summary = out / "summary.json"
    runner.run(["nnUNetv2_evaluate_folder", str(labels), str(out), "-djfile", str(out / "dataset.json"),
                "-pfile", str(out / "plans.json"), "-o", str(summary), "-np", "1"],
               f"evaluate_{spec.trainer}_{spec.configuration}")
    return dice_from_summary(summary, labels_by_value(dataset_json)), per_case


def collect(paths: DatasetPaths, spec: ModelSpec, fold: int) -> tuple[ModelResult, dict[str, list[float]]]:
    fold_dir = paths.model_folder(spec) / f"fold_{fold}"
    checkpoint = torch.load(fold_dir / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    dataset_json = json.loads((paths.model_folder(spec) / "dataset.json").read_text())
    result = ModelResult(spec.label, spec.trainer, spec.configuration,
                         validation_dice=dice_from_summary(fold_dir / "validation" / "summary.json",
                                                           labels_by_value(dataset_json)),
                         seconds_per_epoch=seconds_per_epoch(checkpoint),
                         parameters=count_parameters(checkpoint))
    return result, training_curves(checkpoint)


def reported_dice(result: ModelResult) -> dict[str, float]:
    """Test Dice where the dataset has labelled test cases, else the fold's validation Dice."""
    return result.test_dice or result.validation_dice


def reported_classes(results: list[ModelResult]) -> list[str]:
    return list(dict.fromkeys(c for r in results for c in reported_dice(r)))


def render_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def markdown_table(results: list[ModelResult], baseline: ModelResult | None = None) -> str:
    classes = reported_classes(results)
    source = "test" if any(r.test_dice for r in results) else "validation"
    header = ["model", "trainer", "configuration"] + [f"Dice {c} ({source})" for c in classes] + \
        ["s/epoch", "s/case", "params (M)"]
    if baseline is not None:
        header += ["epoch time vs 2d", "case time vs 2d"]
    rows = []
    for r in results:
        dice = reported_dice(r)
        row = [r.label, f"`{r.trainer}`", r.configuration]
        row += [f"{dice.get(c, float('nan')):.3f}" for c in classes]
        row += [f"{r.seconds_per_epoch:.2f}", f"{r.seconds_per_case:.2f}", f"{r.parameters / 1e6:.2f}"]
        if baseline is not None:
            row += [f"{r.seconds_per_epoch / baseline.seconds_per_epoch:.2f}x",
                    f"{r.seconds_per_case / baseline.seconds_per_case:.2f}x"]
        rows.append(row)
    return render_markdown(header, rows)


def write_csv(results: list[ModelResult], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "trainer", "configuration", "split", "class", "dice", "seconds_per_epoch",
                         "seconds_per_case", "parameters"])
        for r in results:
            for split, dice in (("test", r.test_dice), ("validation", r.validation_dice)):
                for cls, value in dice.items():
                    writer.writerow([r.label, r.trainer, r.configuration, split, cls, f"{value:.4f}",
                                     f"{r.seconds_per_epoch:.3f}", f"{r.seconds_per_case:.3f}", r.parameters])


def plot_report(results: list[ModelResult], curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_dice, ax_cost, ax_curve) = plt.subplots(1, 3, figsize=(16, 4.5))
    classes = reported_classes(results)
    width = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        dice = reported_dice(r)
        x = np.arange(len(classes)) + i * width
        ax_dice.bar(x, [dice.get(c, 0.0) for c in classes], width, label=r.label)
    ax_dice.set_xticks(np.arange(len(classes)) + width * (len(results) - 1) / 2, classes)
    ax_dice.set_ylim(0, 1)
    ax_dice.set_ylabel("Dice")
    ax_dice.set_title("Dice per class")
    ax_dice.legend(fontsize=8)

    labels = [r.label for r in results]
    x = np.arange(len(results))
    ax_cost.bar(x - 0.2, [r.seconds_per_epoch for r in results], 0.4, label="s / epoch")
    ax_cost.bar(x + 0.2, [r.seconds_per_case for r in results], 0.4, label="s / case (inference)")
    ax_cost.set_xticks(x, labels, rotation=20, fontsize=8)
    ax_cost.set_title("Cost")
    ax_cost.legend(fontsize=8)

    for index, (label, curve) in enumerate(curves.items()):
        colour = f"C{index}"
        ax_curve.plot(curve["ema_fg_dice"], color=colour, label=f"{label}: pseudo Dice (EMA)")
        ax_curve.plot(curve["val_losses"], color=colour, ls="--", label=f"{label}: val loss")
    ax_curve.set_xlabel("epoch")
    ax_curve.set_title("Training curves")
    ax_curve.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: list[ModelResult], curves: dict[str, dict[str, list[float]]], out_dir: Path,
                 title: str) -> str:
    """Markdown + CSV + PNG into ``out_dir``; returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    baseline = next((r for r in results if r.trainer.startswith("nnUNetTrainer_") or r.trainer == "nnUNetTrainer"),
                    None)
    markdown = f"## {title}\n\n{markdown_table(results, baseline)}\n\n![report](report.png)\n"
    (out_dir / "report.md").write_text(markdown)
    (out_dir / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    write_csv(results, out_dir / "results.csv")
    plot_report(results, curves, out_dir / "report.png")
    return markdown
