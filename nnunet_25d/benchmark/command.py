"""``nnunet25d benchmark``: train the missing folds of a (trainer x configuration) matrix, then report."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from nnunet_25d.benchmark.dataset_check import check_file_endings, with_verification
from nnunet_25d.benchmark.collect import Scoring, collect_fold, collect_test, read_cases_csv, write_cases_csv
from nnunet_25d.benchmark.fold_lock import FoldLock, preprocessing_lock_path
from nnunet_25d.benchmark.estimate import prediction_memory_gib, remaining_training
from nnunet_25d.benchmark.launch import add_launch_arguments, schedule
from nnunet_25d.benchmark.matrix import BASELINES, Job, Variant, build_jobs, parse_variant
from nnunet_25d.benchmark.recommended import recommended_of, recommended_scores, score_recommended
from nnunet_25d.benchmark.report import write_report
from nnunet_25d.benchmark.power import Power
from nnunet_25d.benchmark.resources import at_least
from nnunet_25d.benchmark.statistics import METRICS, Comparison
from nnunet_25d.benchmark.summary import PrimaryComparison, VariantSummary, compare_all
from nnunet_25d.benchmark.surface import dataset_labels, tolerances_per_class
from nnunet_25d.benchmark.testset import EnsemblePrediction, TestSet, ensemble_predictions, find_test_set, \
    predict_test_sets
from nnunet_25d.benchmark.task import run_task
from nnunet_25d.benchmark.training import train_missing, unfinished_runs, with_training_failures
from nnunet_25d.benchmark.demo import parse_schedule
from nnunet_25d.errors import UserError
from nnunet_25d.inference.checkpoint_file import CheckpointError
from nnunet_25d.benchmark.preflight import check_trainer_lookup_imports, cuda_device_name, default_device, preflight
from nnunet_25d.benchmark.runner import NNUNET_FOLDERS as FOLDERS
from nnunet_25d.benchmark.runner import CommandFailed, NNUNetRunner
from nnunet_25d.planning.self_configuration import benchmark_lines, dataset_choice
from nnunet_25d.report.segmentation_figures import add_figures_argument


def nnunet_folders() -> tuple[Path, Path, Path]:
    missing = [name for name in FOLDERS if not os.environ.get(name)]
    if missing:
        raise SystemExit(f"nnunet25d benchmark uses your nnU-Net folders: set {', '.join(missing)} first")
    return tuple(Path(os.environ[name]) for name in FOLDERS)  # type: ignore[return-value]


def dataset_folder_name(dataset: str, *roots: Path) -> str:
    """``DatasetXXX_Name`` for an ID or a name, looked up in the given nnU-Net folders."""
    if dataset.startswith("Dataset"):
        return dataset
    pattern = f"Dataset{int(dataset):03d}_*"
    for root in roots:
        matches = sorted(root.glob(pattern))
        if matches:
            return matches[0].name
    raise SystemExit(f"no {pattern} in {' or '.join(map(str, roots))}: check the dataset ID and the nnU-Net folders")


def default_configuration(trainer: str) -> str:
    """The configuration a trainer is meant for (``3d_fullres`` for the view and anisotropy-aware trainers)."""
    from nnunet_25d.trainers.registry import TRAINERS

    return getattr(TRAINERS.get(trainer), "default_configuration", "2d")


def variants_from_args(args: argparse.Namespace) -> list[Variant]:
    from nnunet_25d.trainers.registry import BENCHMARK_VARIANTS, TRAINERS, check_trainer_name

    if args.variants:
        pairs = []
        for text in args.variants:
            trainer, configuration = parse_variant(text, default_configuration(text.partition(":")[0]))
            check_trainer_name(trainer)  # an undeclared plugin name (even slab, typo) stops here, with the fix
            pairs.append((trainer, configuration))
    else:
        pairs = list(BASELINES) + list(BENCHMARK_VARIANTS)
    variants = [Variant(trainer, configuration, args.schedule) for trainer, configuration in dict.fromkeys(pairs)]
    if args.schedule:
        undeclared = sorted({v.trainer_name for v in variants if v.trainer_name not in TRAINERS})
        if undeclared:
            raise SystemExit(f"{', '.join(undeclared)}: no such trainer. --schedule exists for nnU-Net's "
                             f"nnUNetTrainer and the plugin's trainers; run other trainers without --schedule")
    return variants


def preprocessing_command(dataset_id: str, dataset: str, preprocessed: Path, variants: list[Variant],
                          plans: str) -> list[str] | None:
    """The nnU-Net command that plans/preprocesses what the matrix needs, or None if everything is there (run it
    again after planning: a self-configuring trainer's choice of data is known from the plans on)."""
    from nnunet_25d.trainers.preprocessed_data import data_configurations

    plans_file = preprocessed / dataset / f"{plans}.json"
    wanted = sorted({c for v in variants
                     for c in data_configurations(v.trainer_name, v.configuration, preprocessed / dataset, plans)})
    if not plans_file.exists():
        if plans != "nnUNetPlans":
            raise SystemExit(f"no plans {plans_file}: plan them first with nnU-Net's matching planner, e.g. "
                             f"`nnUNetv2_plan_and_preprocess -d {dataset_id} -pl <ExperimentPlanner> -c "
                             f"{' '.join(wanted)}`")
        return with_verification(["nnUNetv2_plan_and_preprocess", "-d", dataset_id, "-c", *wanted, "-np", "1"])
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(str(plans_file))
    unplanned = [c for c in wanted if c not in manager.available_configurations]
    if unplanned:
        raise SystemExit(f"plans {plans_file} have no configuration {', '.join(unplanned)} (available: "
                         f"{', '.join(manager.available_configurations)}); plan it with nnUNetv2_plan_experiment "
                         f"or choose other variants")
    missing = [c for c in wanted
               if not (preprocessed / dataset / manager.get_configuration(c).data_identifier).is_dir()]
    if not missing:
        return None
    return ["nnUNetv2_preprocess", "-d", dataset_id, "-plans_name", plans, "-c", *missing, "-np", "1"]


def self_configuration_notes(variants: list[Variant], preprocessed_dataset: Path, plans: str) -> list[str]:
    """What the self-configuring trainers of the matrix choose on this dataset (nothing if none is in it)."""
    from nnunet_25d.trainers.registry import TRAINERS

    if not any(getattr(TRAINERS.get(v.trainer), "self_configuring", False) for v in variants):
        return []
    return benchmark_lines(dataset_choice(preprocessed_dataset, plans))


def nothing_finished_error(dataset: str, preprocessed: Path, jobs: list[Job], args: argparse.Namespace) -> str:
    flag = "--collect-only" if args.collect_only else "--finalize"
    prepared = "" if (preprocessed / dataset).is_dir() else f"; nothing is preprocessed in {preprocessed / dataset}"
    return (f"{flag}: none of the {len(jobs)} runs of this matrix has finished{prepared}. Run the same command "
            f"without {flag} to plan, preprocess and train them (or with --launch/--emit to run them elsewhere)")


def baselines_from_args(args: argparse.Namespace, variants: list[Variant]) -> list[str]:
    """``TRAINER:CONFIGURATION`` of each baseline; the default ones only where the matrix has them."""
    keys = [v.key for v in variants]
    if not args.baselines:
        return [f"{t}:{c}" for t, c in BASELINES if f"{t}:{c}" in keys]
    wanted = [":".join(parse_variant(text, default_configuration(text.partition(":")[0]))) for text in args.baselines]
    missing = [key for key in wanted if key not in keys]
    if missing:
        raise SystemExit(f"baseline {', '.join(missing)} is not in the matrix: add it to --variants")
    return list(dict.fromkeys(wanted))


def summarise(jobs: list[Job], variants: list[Variant], baselines: list[str], out_dir: Path, scoring: Scoring,
              test_predictions: list[EnsemblePrediction] | None = None,
              primary: PrimaryComparison = PrimaryComparison(), refused: list[str] | None = None
              ) -> tuple[list[VariantSummary], list[Comparison]]:
    """Collect the finished folds (of every seeded repeat) and the evaluated test-set predictions, write their
    per-case scores to ``cases.csv`` and compute everything from it. A fold whose checkpoint cannot be loaded
    safely (corrupted inside, or holding code) is left out with a line in ``refused`` (raised without it)."""
    folds = {variant: collected_folds([job for job in jobs if replace(job.variant, seed=0) == variant
                                       and job.finished], scoring, refused)  # every seeded repeat
             for variant in variants}
    tests = [case for p in test_predictions or [] if p.evaluated
             for case in collect_test(p.variant.key, p.folder, p.test_set.labels, scoring, p.variant.seed)]
    cases_file = out_dir / "cases.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_cases_csv([case for results in folds.values() for fold in results for case in fold.cases] + tests,
                    cases_file)
    cases = read_cases_csv(cases_file)
    summaries = [VariantSummary(variant, results, [c for c in cases if c.variant == variant.key])
                 for variant, results in folds.items() if results]
    return summaries, compare_all(summaries, baselines, primary)


def collected_folds(jobs: list[Job], scoring: Scoring, refused: list[str] | None) -> list:
    results = []
    for job in jobs:
        try:
            results.append(collect_fold(job, scoring))
        except CheckpointError as error:
            if refused is None:
                raise
            refused.append(f"{job.variant.run_label} fold {job.fold}: {error}")
    return results


def validation_case_count(dataset_json: dict, folds: list[int], splits_file: Path) -> int:
    """The cases the benchmarked folds validate: from splits_final.json, else as nnU-Net will split numTraining
    (five folds; the first numTraining % 5 of them one case larger)."""
    if splits_file.is_file():
        splits = json.loads(splits_file.read_text())
        return sum(len(splits[f]["val"]) for f in folds if f < len(splits))
    total = int(dataset_json.get("numTraining", 0))
    return sum(total // 5 + (f < total % 5) for f in folds if 0 <= f < 5)


def design_power(args: argparse.Namespace, dataset_json: dict, variants: list[Variant], baselines: list[str],
                 splits_file: Path, test_set: TestSet | None) -> Power:
    """The primary family's size and its cases, known before anything is trained."""
    compared = [v for v in variants if v.key not in baselines]
    family = len(dataset_labels(dataset_json)) * len(compared) * len(baselines)
    if args.primary_split == "test":
        n_pairs = len(test_set.cases) if test_set is not None else 0
    else:
        n_pairs = validation_case_count(dataset_json, args.folds, splits_file)
    return Power(n_pairs, family)


def dataset_json_of(dataset: str, preprocessed: Path, raw: Path) -> dict:
    for folder in (preprocessed / dataset, raw / dataset):
        if (folder / "dataset.json").is_file():
            return json.loads((folder / "dataset.json").read_text())
    raise SystemExit(f"no dataset.json in {preprocessed / dataset} or {raw / dataset}: check the nnU-Net folders")


def resolve_test_set(args: argparse.Namespace, raw_dataset: Path, dataset_json: dict) -> TestSet | None:
    """``--test`` requires a usable imagesTs/labelsTs, ``--no-test`` skips it, the default uses it if there."""
    if args.test is False:
        return None
    test_set, problem = find_test_set(raw_dataset, dataset_json)
    if test_set is None and args.test:
        raise SystemExit(f"--test: {problem}; fix the test folders or run with --no-test")
    if test_set is None and (raw_dataset / "imagesTs").is_dir():
        print(f"test set skipped: {problem}", flush=True)
    return test_set


def fold_ensembles(jobs: list[Job], test_set: TestSet | None, out_dir: Path, folds: list[int],
                        plans: str) -> list[EnsemblePrediction]:
    """The fold ensemble of every variant that finished all benchmarked folds."""
    if test_set is None:
        return []
    complete = [v for v in dict.fromkeys(j.variant for j in jobs) if all(j.finished for j in jobs if j.variant == v)]
    folders = {j.variant: j.model_folder for j in jobs}
    return ensemble_predictions(complete, folds, folders, test_set, out_dir, jobs[0].dataset_id, plans)


def run_find_best(runner: NNUNetRunner, dataset_id: str, summaries: list[VariantSummary], folds: list[int],
                  out_dir: Path, plans: str) -> dict | None:
    """nnU-Net's find_best_configuration over the variants that finished every fold. Its result goes to
    ``out_dir``; the user's own ``inference_information.json`` in nnUNet_results stays as it was."""
    complete = [s.variant for s in summaries if sorted(s.fold_ids) == sorted(folds)]  # seed 0: the plain names
    if not complete:
        print("find_best_configuration skipped: no variant has finished every fold", flush=True)
        return None
    info_file = out_dir / "inference_information.json"
    info_file.unlink(missing_ok=True)  # the benchmark's own copy from an earlier run
    models = [f"{v.trainer_name}:{v.configuration}" for v in complete]
    print(f"nnU-Net find_best_configuration over {len(models)} models", flush=True)
    runner.run([sys.executable, "-m", "nnunet_25d.benchmark.find_best", dataset_id, "--models", *models,
                "--plans", plans, "--folds", *map(str, folds), "--output", str(out_dir)], "find_best_configuration")
    return json.loads(info_file.read_text())


def chosen_device(args: argparse.Namespace) -> str:
    """Without -device: cuda for SLURM (its GPU nodes, not this login node, run the tasks), else what is here."""
    if "slurm" in (args.emit, args.launch):
        device, why = "cuda", "the SLURM tasks run on GPU nodes"
    else:
        device = default_device(cuda_device_name())
        why = f"{'a' if device == 'cuda' else 'no'} CUDA GPU on this machine"
    print(f"-device {device} ({why}; -device sets it)", flush=True)
    return device


def run_benchmark(args: argparse.Namespace) -> str | None:
    started = time.perf_counter()
    raw, preprocessed, results = nnunet_folders()
    dataset = dataset_folder_name(args.dataset, preprocessed, raw)
    dataset_id = str(int(dataset[len("Dataset"):].split("_", 1)[0]))
    variants = variants_from_args(args)
    baselines = baselines_from_args(args, variants)
    jobs = build_jobs(variants, args.folds, dataset_id, results / dataset, args.plans,
                      preprocessed / dataset / "splits_final.json", args.seeds)
    out_dir = Path(args.output) if args.output else results / dataset / "nnunet25d_benchmark"
    if out_dir.resolve() == (results / dataset).resolve():
        raise UserError(f"--output {args.output} is nnU-Net's own results folder of {dataset}, where your "
                        f"inference_information.json lies: give the report a folder of its own (default: "
                        f"{results / dataset / 'nnunet25d_benchmark'})")
    dataset_json = dataset_json_of(dataset, preprocessed, raw)
    tolerances_per_class(args.nsd_tolerance, list(dataset_labels(dataset_json)))  # a wrong count stops here
    scoring = Scoring(preprocessed / dataset / "gt_segmentations",
                      tuple(args.nsd_tolerance) if args.nsd_tolerance else None)
    if args.device is None:
        args.device = chosen_device(args)
    if args.task is not None or args.dry_run:
        return run_task(args, jobs, out_dir)

    train, predict = not (args.collect_only or args.finalize), not args.collect_only
    preprocess = None if not train else \
        preprocessing_command(dataset_id, dataset, preprocessed, variants, args.plans)
    if preprocess and preprocess[0] == "nnUNetv2_plan_and_preprocess" and (raw / dataset / "dataset.json").is_file():
        check_file_endings(raw / dataset, json.loads((raw / dataset / "dataset.json").read_text()))  # before planning
    if args.emit or args.launch:
        return schedule(args, jobs, out_dir, preprocess, benchmark_arguments(args))

    if not train and not any(job.finished for job in jobs):
        raise UserError(nothing_finished_error(dataset, preprocessed, jobs, args))
    test_set = resolve_test_set(args, raw / dataset, dataset_json)
    if args.primary_split == "test" and test_set is None:
        raise UserError("--primary-split test: this run has no test set (imagesTs with labelsTs); declare the "
                        "cross-validation primary (--primary-split cv) or add the test set")
    primary = PrimaryComparison(args.primary_metric, args.primary_split)
    power = design_power(args, dataset_json, variants, baselines, preprocessed / dataset / "splits_final.json",
                         test_set)
    print(power.sentence("cross-validation" if primary.split == "cv" else "test set"), flush=True)
    if train or predict:
        check_trainer_lookup_imports()  # before planning: a broken torch/torchvision pair stops every nnU-Net step
        seconds, basis = remaining_training(jobs) if train else (None, "test-set prediction and scoring only")
        preflight(args.device, seconds, basis,
                  prediction_memory_gib(preprocessed / dataset, args.plans, sorted({v.configuration for v in variants})))
    runner = NNUNetRunner(out_dir / "logs", device=args.device)
    failures = []  # of the test-set predictions and find_best; a fold's failure is read from its files below
    if train and preprocess:
        with FoldLock(preprocessing_lock_path(preprocessed / dataset), f"preprocessing {dataset}", wait=args.wait):
            preprocess = preprocessing_command(dataset_id, dataset, preprocessed, variants, args.plans)  # now ours
            for _ in range(2):  # again after planning: a self-configuring trainer may choose 3d_fullres's data
                if not preprocess:
                    break
                print(shlex.join(preprocess), flush=True)
                runner.run(preprocess, "preprocess")
                preprocess = preprocessing_command(dataset_id, dataset, preprocessed, variants, args.plans)
    dataset_notes = self_configuration_notes(variants, preprocessed / dataset, args.plans)
    for line in dataset_notes:
        print(line, flush=True)
    training_failures = train_missing(runner, jobs, args.device, args.wait) if train else []
    test_predictions = fold_ensembles(jobs, test_set, out_dir, args.folds, args.plans)
    if predict:
        failures += predict_test_sets(runner, test_predictions, args.device)
    refused: list[str] = []  # folds whose checkpoint cannot be loaded safely: not scored, reported
    summaries, comparisons = summarise(jobs, variants, baselines, out_dir, scoring, test_predictions,
                                       primary, refused)
    information = None
    if args.find_best and summaries:
        try:
            information = run_find_best(runner, dataset_id, summaries, args.folds, out_dir, args.plans)
        except CommandFailed as error:
            failures.append(f"find_best_configuration failed: {error.summary}")
    recommended = recommended_of(information, [p for p in test_predictions if p.evaluated and p.variant.seed == 0],
                                 out_dir)
    if recommended is not None and predict:
        problem = score_recommended(runner, recommended)
        failures += [problem] if problem else []
    failed, not_run = with_training_failures(*unfinished_runs(jobs, runner.log_dir), training_failures + refused)
    not_run += [f"{p.variant.run_label} test set: not predicted (run with --finalize, or without --collect-only, to "
                "predict it)" for p in test_predictions if not p.evaluated]
    title = f"{dataset}: benchmark, {folds_phrase(args.folds)}"
    if args.schedule:
        title += f", {args.schedule[0]} epochs x {args.schedule[1]} iterations"
    if args.seeds > 1:
        title += f", {args.seeds} seeds"
    markdown = write_report(summaries, comparisons, baselines, out_dir, title, information, failed + failures,
                            not_run, primary, recommended_scores(recommended, scoring), dataset_notes,
                            figures=args.figures, raw_dataset=raw / dataset)
    print("\n" + markdown)
    print(f"report: {out_dir / 'benchmark.md'} ({time.perf_counter() - started:.0f} s)", flush=True)
    if failures or (train and (failed or not_run)):  # --finalize after tasks: a failed fold is in the report
        raise SystemExit(1)
    return markdown


def folds_phrase(folds: list[int]) -> str:
    """How many of nnU-Net's five folds the benchmark ran, for its title."""
    if sorted(folds) == list(range(5)):
        return "five-fold cross-validation"
    return f"{len(folds)} of nnU-Net's five folds ({','.join(map(str, folds))})"


def benchmark_arguments(args: argparse.Namespace) -> list[str]:
    """The arguments that reproduce this matrix (for the emitted collect step)."""
    out = ["-d", args.dataset, "--folds", *map(str, args.folds), "--plans", args.plans, "-device", args.device]
    if args.variants:
        out += ["--variants", *args.variants]
    if args.baselines:
        out += ["--baselines", *args.baselines]
    if args.schedule:
        out += ["--schedule", f"{args.schedule[0]}x{args.schedule[1]}"]
    if args.output:
        out += ["--output", str(args.output)]
    if not args.find_best:
        out.append("--no-find-best")
    if args.nsd_tolerance:
        out += ["--nsd-tolerance", *map(str, args.nsd_tolerance)]
    if args.test is not None:
        out.append("--test" if args.test else "--no-test")
    if args.figures != "key":
        out += ["--figures", args.figures]
    if not args.wait:
        out.append("--no-wait")
    return out + ["--primary-metric", args.primary_metric, "--primary-split", args.primary_split,
                  "--seeds", str(args.seeds)]


def add_benchmark_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "benchmark", help="five-fold benchmark of the 2.5D variants against nnU-Net's 2d and 3d_fullres",
        description="Trains the missing folds of a (trainer, configuration) matrix with nnUNetv2_train --npz "
                    "(finished folds are skipped, interrupted ones resumed with --c), then reports mean Dice per "
                    "class over cases (± std over folds), every variant against every baseline per class (paired "
                    "mean difference with bootstrap CI, sign-flip permutation p; Holm-adjusted over the primary "
                    "comparison declared with --primary-metric/--primary-split), the design's power, cost, "
                    "plots, and nnU-Net's find_best_configuration over the matrix. Uses your nnUNet_raw, "
                    "nnUNet_preprocessed and nnUNet_results.")
    parser.add_argument("-d", "--dataset", required=True, help="dataset ID or DatasetXXX_Name")
    parser.add_argument("--variants", nargs="+", metavar="TRAINER[:CONFIG]",
                        help="default: nnUNetTrainer:2d nnUNetTrainer:3d_fullres and the plugin's main variants "
                             "(configuration defaults to 2d)")
    parser.add_argument("--baselines", nargs="+", metavar="TRAINER[:CONFIG]",
                        help="the variants every other variant is compared with, each of them, class by class "
                             "(must be in the matrix; default: nnUNetTrainer:2d nnUNetTrainer:3d_fullres)")
    parser.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--schedule", type=parse_schedule, default=None,
                        help="a CPU-sized schedule (e.g. 2x5 = 2 epochs x 5 iterations) for every trainer; "
                             "default: each trainer's own (nnU-Net: 1000 epochs)")
    parser.add_argument("--plans", default="nnUNetPlans")
    parser.add_argument("-device", "--device", default=None, choices=["cuda", "cpu", "mps"],
                        help="nnU-Net's device (default: cuda where this machine has a CUDA GPU, else cpu)")
    parser.add_argument("--collect-only", action="store_true",
                        help="train and predict nothing; report what is finished")
    parser.add_argument("--finalize", action="store_true",
                        help="train nothing; predict and score the test set with each variant whose folds are all "
                             "finished, run find_best_configuration, report (what the report job of --launch and "
                             "--emit slurm runs after the tasks)")
    parser.add_argument("--emit", choices=["slurm", "commands"],
                        help="write a SLURM job array (+ collect step) or print the commands; run nothing")
    parser.add_argument("--no-find-best", dest="find_best", action="store_false",
                        help="skip nnU-Net's find_best_configuration")
    parser.add_argument("--test", action=argparse.BooleanOptionalAction, default=None,
                        help="after the folds, predict imagesTs with each variant's ensemble of the benchmarked folds "
                             "(nnUNetv2_predict -f ...), score it against labelsTs and compare it like the "
                             "cross-validation (default: on when the raw dataset has imagesTs and labelsTs)")
    parser.add_argument("--nsd-tolerance", type=float, nargs="+", metavar="MM", default=None,
                        help="tolerance of the normalised surface Dice in mm: one value for every class or one per "
                             "class in dataset.json's order (default: 1 mm)")
    parser.add_argument("--seeds", type=at_least(1), default=1, metavar="N",
                        help="train every model N times (seeded repeats <TRAINER>_seed1 ...; the first is the plain "
                             "trainer): the report gives the spread between repeats, compares the models' per-case "
                             "means over repeats and adds a bootstrap CI clustered by fold and seed")
    parser.add_argument("--primary-metric", choices=list(METRICS), default="dice",
                        help="the metric of the primary comparison, declared before the run: Holm corrects over its "
                             "classes x variants x baselines; other metrics are reported as secondary, uncorrected")
    parser.add_argument("--primary-split", choices=["cv", "test"], default="cv",
                        help="the split of the primary comparison: the cross-validation (default) or the test set")
    parser.add_argument("--output", default=None,
                        help="report folder (default: nnUNet_results/DatasetXXX/nnunet25d_benchmark)")
    parser.add_argument("--no-wait", dest="wait", action="store_false",
                        help="a fold (or the dataset's preprocessing) that another benchmark is running is reported "
                             "as held by it and skipped (default: wait for it, then skip it if it finished)")
    add_figures_argument(parser)
    add_launch_arguments(parser)
    parser.set_defaults(func=run_benchmark)
