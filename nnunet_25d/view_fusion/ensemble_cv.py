"""``nnunet25d ensemble-cv``: nnU-Net's cross-validation ensembling for any number of models, e.g. the three views, or
one network trained at several scales (multi-scale ensemble).

``nnUNetv2_find_best_configuration`` ensembles pairs of models only. This runs the same nnU-Net functions on a
list of models: ``ensemble_crossvalidations`` (softmax averaging of the folds' ``--npz`` validation outputs),
``compute_metrics_on_folder`` against ``gt_segmentations``, and postprocessing: by default nnU-Net's
``determine_postprocessing`` (largest connected component per class, kept where it helps); with
``--largest-component always`` every foreground class keeps its largest component unconditionally (the fixed rule of
Mei et al.'s multi-scale ensemble). A model is ``TRAINER:CONFIGURATION``, or ``TRAINER:CONFIGURATION:PLANS`` for a
member trained with other plans (e.g. a plans variant resampled coarser). At test time the same fusion is
``nnUNetv2_predict --save_probabilities`` per model, ``nnUNetv2_ensemble`` and ``nnUNetv2_apply_postprocessing``
with the ``postprocessing.pkl`` written here.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from nnunet_25d.benchmark.matrix import parse_model_pair
from nnunet_25d.inference.model_folder import dataset_name

MAX_NAME_LENGTH = 200  # file systems allow 255 bytes per folder name
LARGEST_COMPONENT_RULES = ("auto", "always")


def ensemble_name(identifiers: list[str], folds: list[int]) -> str:
    """nnU-Net's naming of pairwise ensembles (``ensemble___A___B___0_1_2_3_4``), extended to any number of models;
    names too long for a folder become ``ensemble___<n>models_<hash>___<folds>`` (members listed in
    ``members.json`` inside)."""
    folds_text = "_".join(map(str, folds))
    name = "ensemble___" + "___".join(identifiers) + "___" + folds_text
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha1("___".join(identifiers).encode()).hexdigest()[:12]
    return f"ensemble___{len(identifiers)}models_{digest}___{folds_text}"


def parse_member(text: str) -> tuple[str, ...]:
    """``TRAINER:CONFIGURATION`` -> (trainer, configuration); ``TRAINER:CONFIGURATION:PLANS`` -> with its plans."""
    parts = text.split(":")
    if len(parts) > 3 or (len(parts) == 3 and not parts[2]):
        raise ValueError(f"expected TRAINER:CONFIGURATION or TRAINER:CONFIGURATION:PLANS, got {text!r}")
    pair = parse_model_pair(":".join(parts[:2]))
    return (*pair, parts[2]) if len(parts) == 3 else pair


def model_identifier(model: tuple[str, ...], plans: str) -> str:
    """nnU-Net's model folder name ``TRAINER__PLANS__CONFIGURATION`` of a (trainer, configuration[, plans])."""
    trainer, configuration, *own_plans = model
    return f"{trainer}__{own_plans[0] if own_plans else plans}__{configuration}"


def evaluate(out: Path, reference: str, manager, dataset_json: dict, labels, num_processes: int) -> None:
    """nnU-Net's ``compute_metrics_on_folder`` of the segmentations in ``out`` into ``out/summary.json``."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder

    compute_metrics_on_folder(reference, str(out), str(out / "summary.json"), manager.image_reader_writer_class(),
                              dataset_json["file_ending"],
                              labels.foreground_regions if labels.has_regions else labels.foreground_labels,
                              labels.ignore_label, num_processes)


def keep_largest_components(out: Path, reference: str, manager, dataset_json: dict, labels,
                            num_processes: int) -> None:
    """Every foreground class (region) keeps its largest connected component: nnU-Net's own postprocessing function
    for each class, written to ``postprocessing.pkl`` for ``nnUNetv2_apply_postprocessing``, applied to ``out``
    into ``out/postprocessed`` and evaluated there."""
    from batchgenerators.utilities.file_and_folder_operations import save_pickle
    from nnunetv2.postprocessing.remove_connected_components import (
        apply_postprocessing_to_folder,
        remove_all_but_largest_component_from_segmentation,
    )
    from nnunetv2.utilities.json_export import recursive_fix_for_json_export

    classes = labels.foreground_regions if labels.has_regions else labels.foreground_labels
    functions = [remove_all_but_largest_component_from_segmentation] * len(classes)
    kwargs = [{"labels_or_regions": label} for label in classes]
    save_pickle((functions, kwargs), str(out / "postprocessing.pkl"))
    description = {"rule": "always", "postprocessing_fns": [f.__name__ for f in functions],
                   "postprocessing_kwargs": kwargs}
    recursive_fix_for_json_export(description)  # numpy labels -> JSON numbers
    (out / "postprocessing.json").write_text(json.dumps(description, indent=2))
    apply_postprocessing_to_folder(str(out), str(out / "postprocessed"), functions, kwargs, str(out / "plans.json"),
                                   str(out / "dataset.json"), num_processes)
    evaluate(out / "postprocessed", reference, manager, dataset_json, labels, num_processes)


def ensemble_cross_validation(dataset: str, models: list[tuple[str, ...]], folds: list[int], plans: str = "nnUNetPlans",
                              output: Path | None = None, num_processes: int = 1,
                              largest_component: str = "auto") -> dict:
    """Fuse, evaluate and postprocess ``models`` ((trainer, configuration) or (trainer, configuration, plans); the
    others use ``plans``); returns {"folder", "dice", "dice_postprocessed"}."""
    from nnunetv2.ensembling.ensemble import ensemble_crossvalidations
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results
    from nnunetv2.postprocessing.remove_connected_components import determine_postprocessing
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    if largest_component not in LARGEST_COMPONENT_RULES:
        raise ValueError(f"largest_component must be one of {LARGEST_COMPONENT_RULES}, got {largest_component!r}")
    name = dataset_name(dataset)
    identifiers = [model_identifier(model, plans) for model in models]
    folders = [str(Path(nnUNet_results) / name / identifier) for identifier in identifiers]
    missing = [f for f in folders if not Path(f).is_dir()]
    if missing:
        raise SystemExit(f"not trained: {', '.join(missing)}. Train every fold with `nnUNetv2_train ... --npz`")
    check_validated_folds([Path(f) for f in folders], folds)
    out = Path(output) if output else Path(nnUNet_results) / name / "ensembles" / ensemble_name(identifiers, folds)
    ensemble_crossvalidations(folders, str(out), folds, num_processes, overwrite=True)
    (out / "members.json").write_text(json.dumps({"models": identifiers, "folds": folds}, indent=2))

    manager = PlansManager(str(out / "plans.json"))
    dataset_json = json.loads((out / "dataset.json").read_text())
    labels = manager.get_label_manager(dataset_json)
    reference = str(Path(nnUNet_preprocessed) / name / "gt_segmentations")
    evaluate(out, reference, manager, dataset_json, labels, num_processes)
    if largest_component == "always":
        keep_largest_components(out, reference, manager, dataset_json, labels, num_processes)
    else:
        determine_postprocessing(str(out), reference, str(out / "plans.json"), str(out / "dataset.json"),
                                 num_processes, keep_postprocessed_files=True)
    dice = json.loads((out / "summary.json").read_text())["foreground_mean"]["Dice"]
    dice_pp = json.loads((out / "postprocessed" / "summary.json").read_text())["foreground_mean"]["Dice"]
    return {"folder": str(out), "dice": dice, "dice_postprocessed": dice_pp}


def validated_folds(model_folder: Path) -> list[int]:
    """Folds whose validation holds nnU-Net's ``.npz`` probabilities (``--npz``), which ensembling averages."""
    return sorted(int(f.name[len("fold_"):]) for f in model_folder.glob("fold_*")
                  if f.name[len("fold_"):].isdigit() and any((f / "validation").glob("*.npz")))


def check_validated_folds(model_folders: list[Path], folds: list[int]) -> None:
    for folder in model_folders:
        have = validated_folds(folder)
        lacking = [fold for fold in folds if fold not in have]
        if lacking:
            trainer, plans, configuration = folder.name.split("__")
            raise SystemExit(
                f"{folder.name} has no validation probabilities for fold(s) {', '.join(map(str, lacking))}: train "
                f"them with `nnUNetv2_train {folder.parent.name} {configuration} FOLD -tr {trainer} -p {plans} --npz` "
                f"(add --val if the fold is trained); folds with them: {', '.join(map(str, have)) or 'none'} "
                f"(ensemble those with -f {' '.join(map(str, have)) or 'FOLD'})")


def run(args: argparse.Namespace) -> None:
    try:
        models = [parse_member(text) for text in args.models]
    except ValueError as error:
        raise SystemExit(f"nnunet25d ensemble-cv --models: {error}")
    result = ensemble_cross_validation(args.dataset, models, args.folds, args.plans, args.output, args.num_processes,
                                       args.largest_component)
    print(f"fused {len(models)} models: cross-validation Dice {result['dice']:.4f}, "
          f"{result['dice_postprocessed']:.4f} with postprocessing (largest component: {args.largest_component})\n"
          f"folder (summary.json, postprocessing.pkl): {result['folder']}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ensemble-cv", help="softmax-average the cross-validation of several models (e.g. the "
                            "three views, or one network at several scales), evaluate, postprocess",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset", required=True, help="dataset ID or name")
    parser.add_argument("--models", nargs="+", required=True, metavar="TRAINER:CONFIG[:PLANS]",
                        help="the members; PLANS (default: -p) for members trained with other plans")
    parser.add_argument("-f", "--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("-p", "--plans", default="nnUNetPlans")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="default: nnUNet_results/DatasetXXX/ensembles/ensemble___<models>___<folds>")
    parser.add_argument("-np", "--num-processes", type=int, default=1)
    parser.add_argument("--largest-component", choices=LARGEST_COMPONENT_RULES, default="auto",
                        help="auto: nnU-Net's determine_postprocessing (keep the largest connected component where "
                             "it raises the CV Dice); always: every foreground class keeps its largest component")
    parser.set_defaults(func=run)
