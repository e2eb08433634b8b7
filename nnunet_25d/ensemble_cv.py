"""``nnunet25d ensemble-cv``: nnU-Net's cross-validation ensembling for any number of models, e.g. the three views.

``nnUNetv2_find_best_configuration`` ensembles pairs of models only. This runs the same nnU-Net functions on a
list of models: ``ensemble_crossvalidations`` (softmax averaging of the folds' ``--npz`` validation outputs),
``compute_metrics_on_folder`` against ``gt_segmentations``, and ``determine_postprocessing`` (largest connected
component per class, kept where it helps). At test time the same fusion is ``nnUNetv2_predict --save_probabilities``
per model, ``nnUNetv2_ensemble`` and ``nnUNetv2_apply_postprocessing`` with the ``postprocessing.pkl`` written here.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from nnunet_25d.benchmark.matrix import parse_model_pair

MAX_NAME_LENGTH = 200  # file systems allow 255 bytes per folder name


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


def ensemble_cross_validation(dataset: str, models: list[tuple[str, str]], folds: list[int], plans: str = "nnUNetPlans",
                              output: Path | None = None, num_processes: int = 1) -> dict:
    """Fuse, evaluate and determine postprocessing; returns {"folder", "dice", "dice_postprocessed"}."""
    from nnunetv2.ensembling.ensemble import ensemble_crossvalidations
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results
    from nnunetv2.postprocessing.remove_connected_components import determine_postprocessing
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    name = maybe_convert_to_dataset_name(dataset)
    identifiers = [f"{trainer}__{plans}__{configuration}" for trainer, configuration in models]
    folders = [str(Path(nnUNet_results) / name / identifier) for identifier in identifiers]
    missing = [f for f in folders if not Path(f).is_dir()]
    if missing:
        raise SystemExit(f"not trained: {', '.join(missing)}. Train every fold with `nnUNetv2_train ... --npz`")
    out = Path(output) if output else Path(nnUNet_results) / name / "ensembles" / ensemble_name(identifiers, folds)
    ensemble_crossvalidations(folders, str(out), folds, num_processes, overwrite=True)
    (out / "members.json").write_text(json.dumps({"models": identifiers, "folds": folds}, indent=2))

    manager = PlansManager(str(out / "plans.json"))
    dataset_json = json.loads((out / "dataset.json").read_text())
    labels = manager.get_label_manager(dataset_json)
    reference = str(Path(nnUNet_preprocessed) / name / "gt_segmentations")
    compute_metrics_on_folder(reference, str(out), str(out / "summary.json"), manager.image_reader_writer_class(),
                              dataset_json["file_ending"],
                              labels.foreground_regions if labels.has_regions else labels.foreground_labels,
                              labels.ignore_label, num_processes)
    determine_postprocessing(str(out), reference, str(out / "plans.json"), str(out / "dataset.json"),
                             num_processes, keep_postprocessed_files=True)
    dice = json.loads((out / "summary.json").read_text())["foreground_mean"]["Dice"]
    dice_pp = json.loads((out / "postprocessed" / "summary.json").read_text())["foreground_mean"]["Dice"]
    return {"folder": str(out), "dice": dice, "dice_postprocessed": dice_pp}


def run(args: argparse.Namespace) -> None:
    try:
        models = [parse_model_pair(text) for text in args.models]
    except ValueError as error:
        raise SystemExit(f"nnunet25d ensemble-cv --models: {error}")
    result = ensemble_cross_validation(args.dataset, models, args.folds, args.plans, args.output, args.num_processes)
    print(f"fused {len(models)} models: cross-validation Dice {result['dice']:.4f}, "
          f"{result['dice_postprocessed']:.4f} with postprocessing\n"
          f"folder (summary.json, postprocessing.pkl): {result['folder']}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ensemble-cv", help="softmax-average the cross-validation of several models (e.g. the "
                            "three views), evaluate, determine postprocessing", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--dataset", required=True, help="dataset ID or name")
    parser.add_argument("--models", nargs="+", required=True, metavar="TRAINER:CONFIG")
    parser.add_argument("-f", "--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("-p", "--plans", default="nnUNetPlans")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="default: nnUNet_results/DatasetXXX/ensembles/ensemble___<models>___<folds>")
    parser.add_argument("-np", "--num-processes", type=int, default=1)
    parser.set_defaults(func=run)
