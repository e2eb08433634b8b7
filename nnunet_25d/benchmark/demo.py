"""``nnunet25d demo``: nnU-Net's 2d against nnUNetTrainer25D on one dataset, end to end, with nnU-Net's commands."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from nnunet_25d.inference.checkpoint_file import is_readable_checkpoint, unreadable_checkpoint_message
from nnunet_25d.predict.command import PREDICT_COMMAND
from nnunet_25d.report.segmentation_figures import add_figures_argument
from nnunet_25d.benchmark.comparison import (
    DatasetPaths,
    ModelResult,
    ModelSpec,
    add_other_cpu,
    collect,
    is_nnunet_baseline,
    predict_and_evaluate,
    predict_log_name,
    predict_startup_seconds,
    prediction_engine,
    record_training_contention,
    report_setting,
    stock_2d_seconds_per_case,
    train,
    write_report,
)
from nnunet_25d.errors import DatasetNotFoundError, UserError
from nnunet_25d.benchmark.preflight import check_trainer_lookup_imports, default_device, preflight, read_machine
from nnunet_25d.benchmark.runner import NNUNetRunner
from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset
from nnunet_25d.trainers.variants import CPU_SCHEDULES, schedule_name

DEMO_DATASET_ID = 525
DEMO_SCHEDULE = (10, 50)
# the demo on 2 idle cores of this project's CPU machine (10 min 14 s at 10 x 50, benchmarks/results/
# demo_report_stop17.md): ~0.43 s per training iteration per model, ~184 s for the rest (data, planning,
# validation, prediction, evaluation)
DEMO_SECONDS_PER_ITERATION = 0.43
DEMO_FIXED_SECONDS = 184.0
DEMO_MEMORY_GIB = 3.0  # about, for the synthetic 20 x 64 x 64 cases


def _step(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)


def _dataset_name(raw: Path, dataset_id: int) -> str:
    matches = sorted(raw.glob(f"Dataset{dataset_id:03d}_*"))
    if not matches:
        raise DatasetNotFoundError(f"no Dataset{dataset_id:03d}_* in nnUNet_raw={raw}: check the dataset ID and "
                                   f"nnUNet_raw")
    return matches[0].name


def _folders(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    if args.dataset is None:  # self-contained demo under the work folder
        work = Path(args.workdir).resolve()
        return work / "nnUNet_raw", work / "nnUNet_preprocessed", work / "nnUNet_results"
    missing = [v for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results") if v not in os.environ]
    if missing:
        raise UserError(f"--dataset uses your nnU-Net folders: set {', '.join(missing)} first")
    return (Path(os.environ["nnUNet_raw"]), Path(os.environ["nnUNet_preprocessed"]),
            Path(os.environ["nnUNet_results"]))


def models(epochs: int, iterations: int, slab_trainer: str) -> list[ModelSpec]:
    return [
        ModelSpec("nnU-Net 2d", schedule_name("nnUNetTrainer", epochs, iterations), "2d", epochs),
        ModelSpec(f"2.5D {slab_trainer}", schedule_name(slab_trainer, epochs, iterations), "2d", epochs),
    ]


def configurations_needed(spec: ModelSpec, preprocessed_dataset: Path | None = None) -> set[str]:
    """The configurations whose preprocessed data ``spec`` trains on (its own, e.g. 3d_fullres's for
    nnUNetTrainer25DResampled, and what the self-configuring nnUNetTrainer25D chooses once the dataset is planned)."""
    from nnunet_25d.trainers.preprocessed_data import data_configurations

    return data_configurations(spec.trainer, spec.configuration, preprocessed_dataset)


def prepare(args: argparse.Namespace, specs: list[ModelSpec],
            started: float) -> tuple[NNUNetRunner, DatasetPaths, Path]:
    """Runner, dataset paths (writing the synthetic dataset if needed) and work folder; plans what is missing."""
    raw, preprocessed, results = _folders(args)
    work = Path(args.workdir).resolve()
    runner = NNUNetRunner(work / "logs", str(raw), str(preprocessed), str(results), device=args.device,
                          announce=lambda line: _step(line, started))
    dataset_id = args.dataset if args.dataset is not None else DEMO_DATASET_ID
    if args.dataset is None and not any(raw.glob(f"Dataset{dataset_id:03d}_*")):
        _step(f"writing the synthetic dataset Dataset{dataset_id:03d} to {raw}", started)
        write_dataset(raw, dataset_id, seed=args.seed, spec=SyntheticSpec(z_spacings=getattr(args, "z_spacings", ())))
    paths = DatasetPaths(_dataset_name(raw, dataset_id), raw, preprocessed, results)

    for _ in range(2):  # once more after planning: a self-configuring trainer may choose 3d_fullres's data
        folder = preprocessed / paths.name
        configurations = sorted({c for spec in specs for c in configurations_needed(spec, folder)})
        missing = [c for c in configurations if not (folder / f"nnUNetPlans_{c}").is_dir()]
        if not missing:
            break
        _step(f"planning and preprocessing {', '.join(missing)}", started)
        runner.run(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", *missing, "-np", "1",
                    "--verify_dataset_integrity"], "plan_and_preprocess")
    return runner, paths, work


def training_state(fold_dir: Path) -> str:
    """What :func:`comparison.train` will do with a fold: ``finished`` (final checkpoint and validation summary:
    skipped), ``resume`` (a checkpoint: ``--c``) or ``new``."""
    final = fold_dir / "checkpoint_final.pth"
    if final.exists() and not is_readable_checkpoint(final):
        raise UserError(unreadable_checkpoint_message(final, "delete it and run the demo again to retrain that model"))
    if final.exists() and (fold_dir / "validation" / "summary.json").exists():
        return "finished"
    if (fold_dir / "checkpoint_latest.pth").exists() or (fold_dir / "checkpoint_final.pth").exists():
        return "resume"
    return "new"


def train_all(runner: NNUNetRunner, paths: DatasetPaths, specs: list[ModelSpec], fold: int, started: float) -> None:
    """Train every spec on ``fold``: one line per model saying whether it is skipped, resumed or trained (the
    runner then prints the command it really runs)."""
    for spec in specs:
        state = training_state(paths.model_folder(spec) / f"fold_{fold}")
        what = f"{spec.trainer} ({spec.configuration}, fold {fold})"
        if state == "finished":
            _step(f"{what}: skipped (finished)", started)
            continue
        _step(f"{what}: resuming with --c" if state == "resume" else f"training {what}", started)
        train(runner, paths, spec, fold)


def train_and_test(args: argparse.Namespace, specs: list[ModelSpec], save_probabilities: bool = False
                   ) -> tuple[list[ModelResult], dict[str, dict[str, list[float]]], NNUNetRunner, DatasetPaths, Path]:
    """Train ``specs`` on ``args.fold`` (skipping finished ones), predict and score the test set."""
    started = time.perf_counter()
    runner, paths, work = prepare(args, specs, started)
    train_all(runner, paths, specs, args.fold, started)
    record_training_contention(runner, paths, specs, args.fold)

    _step("measuring nnU-Net's start-up time (nnUNetv2_predict -h; subtracted from s/case)", started)
    startup = predict_startup_seconds(runner)
    collected, curves = [], {}
    for spec in specs:
        _step(f"testing {spec.trainer}: {' '.join(PREDICT_COMMAND)}, then nnUNetv2_evaluate_folder", started)
        result, curve = collect(paths, spec, args.fold)
        result.test_dice, result.test_cases, result.seconds_per_case = predict_and_evaluate(
            runner, paths, spec, args.fold, work / "predictions", startup, save_probabilities)
        result.engine = prediction_engine(runner, spec)
        if result.engine != "PyTorch" and is_nnunet_baseline(spec.trainer) and spec.configuration == "2d":
            _step(f"timing {spec.trainer} as users run it: nnUNetv2_predict", started)
            result.stock_seconds_per_case = stock_2d_seconds_per_case(runner, paths, spec, args.fold,
                                                                      work / "predictions", startup)
        add_other_cpu(result, runner.other_cpu.get(predict_log_name(spec)))
        collected.append(result)
        curves[spec.label] = curve
    return collected, curves, runner, paths, work


def completed_epochs(fold_dir: Path) -> int:
    """Epochs a fold's training logs show as finished (nnU-Net logs "Epoch time" at the end of each)."""
    return sum(log.read_text(errors="replace").count("Epoch time:") for log in fold_dir.glob("training_log_*.txt"))


def remaining_epochs(fold_dir: Path, epochs: int) -> int:
    """Epochs still to train on a fold: none when finished, the rest of a resumable one, all of a new one."""
    state = training_state(fold_dir)
    if state == "finished":
        return 0
    return max(epochs - completed_epochs(fold_dir), 0) if state == "resume" else epochs


def demo_estimate(args: argparse.Namespace, specs: list[ModelSpec]) -> tuple[float | None, str]:
    """Idle-machine seconds of what is left of this run and what the figure rests on."""
    if args.dataset is not None or args.device != "cpu":
        return None, "measured only for the synthetic dataset on the CPU"
    epochs, iterations = args.schedule
    results = _folders(args)[2]
    dataset = next(iter(sorted(results.glob(f"Dataset{DEMO_DATASET_ID:03d}_*"))), None)
    left = [remaining_epochs(dataset / f"{spec.trainer}__nnUNetPlans__{spec.configuration}" / f"fold_{args.fold}",
                             epochs) if dataset else epochs for spec in specs]
    seconds = DEMO_FIXED_SECONDS + sum(left) * iterations * DEMO_SECONDS_PER_ITERATION
    done = len(specs) * epochs - sum(left)
    already = f"; {done} of {len(specs) * epochs} epochs already trained" if done else ""
    return seconds, f"measured on 2 idle CPU cores; scales with the schedule{already}"


def compare(args: argparse.Namespace, specs: list[ModelSpec], title: str) -> str:
    """Plan (if needed), train, predict and evaluate ``specs`` on the demo's or the user's dataset; report."""
    raw = _folders(args)[0]
    if args.dataset is not None:
        _dataset_name(raw, args.dataset)  # a wrong ID stops here, before the machine is sampled
    check_trainer_lookup_imports()  # a broken torch/torchvision pair stops here, before nnU-Net plans anything
    state = read_machine()
    args.device = args.device or default_device(state.gpu)
    seconds, basis = demo_estimate(args, specs)
    preflight(args.device, seconds, basis, DEMO_MEMORY_GIB if args.dataset is None else None, state)
    started = time.perf_counter()
    collected, curves, _, paths, work = train_and_test(args, specs)
    setting = report_setting(paths, specs, args.fold, title, args.device)
    markdown = write_report(collected, curves, work / "report", setting, figures=getattr(args, "figures", "key"))
    print("\n" + markdown)
    _step(f"done; report, CSV and plot in {work / 'report'}", started)
    return markdown


def run_demo(args: argparse.Namespace) -> str:
    epochs, iterations = args.schedule
    return compare(args, models(epochs, iterations, args.slab_trainer), "nnU-Net 2d vs 2.5D")


def add_comparison_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by the demo and the benchmarks."""
    parser.add_argument("--workdir", default="nnunet25d_work", help="folder for logs, predictions and the report "
                        "(and the demo's nnU-Net folders)")
    parser.add_argument("-d", "--dataset", type=int, default=None,
                        help="your dataset ID (uses nnUNet_raw/preprocessed/results) instead of the synthetic one")
    parser.add_argument("--schedule", type=parse_schedule, default=DEMO_SCHEDULE,
                        help="epochs x iterations per epoch, e.g. 10x50 (default)")
    parser.add_argument("-f", "--fold", type=int, default=0)
    parser.add_argument("-device", "--device", default=None, choices=["cpu", "cuda", "mps"],
                        help="nnU-Net's device (default: cuda where this machine has a CUDA GPU, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    add_figures_argument(parser)


def parse_schedule(text: str) -> tuple[int, int]:
    try:
        epochs, iterations = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"schedule must look like 10x50 (epochs x iterations), got {text!r}")
    if (epochs, iterations) not in CPU_SCHEDULES:
        choices = ", ".join(f"{e}x{i}" for e, i in CPU_SCHEDULES)
        raise argparse.ArgumentTypeError(f"schedule {text} is not declared; choose one of {choices}")
    return epochs, iterations


def demo_trainers() -> list[str]:
    """The plugin's trainers that train on the ``2d`` plan (all but the view trainers), without schedule suffixes."""
    from nnunet_25d.trainers.registry import UNSCHEDULED_NAMES, is_view_trainer

    return [name for name in UNSCHEDULED_NAMES if not is_view_trainer(name)]


def demo_trainer(text: str) -> str:
    """``--slab-trainer``: one of :func:`demo_trainers`; otherwise say why not and what is close."""
    import difflib

    from nnunet_25d.trainers.registry import TRAINERS, trainer_name_error
    from nnunet_25d.trainers.variants import split_trainer_name

    names = demo_trainers()
    if text in names:
        return text
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else f"; choose one of {', '.join(names)}"
    parts = split_trainer_name(text) if text in TRAINERS else None
    if parts is not None and parts.epochs is not None:
        reason = "give the trainer without its schedule suffix; the schedule comes from --schedule"
        trainer = parts.base + (f"_{parts.slab_size}{parts.slab_word}" if parts.slab_size else "")
        schedule = f" --schedule {parts.epochs}x{parts.iterations}" if parts.schedule in CPU_SCHEDULES else ""
        hint = f": --slab-trainer {trainer}{schedule}"
    elif text in TRAINERS:
        reason = f"{text} trains on 3d_fullres, the demo compares on nnU-Net's 2d plan"
    else:
        error = trainer_name_error(text)
        reason = str(error) if error is not None else f"{text!r} is not one of the plugin's trainers"
        hint = "" if error is not None else hint
    raise argparse.ArgumentTypeError(reason + hint)


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", help="synthetic dataset -> plan -> train 2d and 2.5D -> predict -> evaluate -> report",
        description="Runs nnU-Net's own commands end to end and prints a Markdown table (Dice per class, s/epoch, "
                    "s/case) plus a PNG plot. Without --dataset it works on its own synthetic dataset under "
                    "--workdir; with --dataset it uses your nnUNet_raw/preprocessed/results.")
    add_comparison_arguments(demo)
    demo.add_argument("--slab-trainer", default="nnUNetTrainer25D", type=demo_trainer, metavar="TRAINER",
                      help="the 2.5D trainer to compare with nnU-Net's 2d, without a schedule suffix: "
                           f"{', '.join(demo_trainers())} (default: nnUNetTrainer25D)")
    demo.set_defaults(func=run_demo)
