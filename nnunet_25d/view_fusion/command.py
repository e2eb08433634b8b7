"""``nnunet25d fuse-views`` (learn, nested by fold, and compare with averaging) and ``nnunet25d apply-fusion``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunet_25d.view_fusion.cross_validation import FUSION_FILE


def markdown_report(means: dict[str, dict[int, float]], class_names: dict[int, str]) -> str:
    classes = sorted(next(iter(means.values())))
    lines = ["| fusion | " + " | ".join(f"Dice {class_names.get(k, k)}" for k in classes) + " |",
             "|---" * (len(classes) + 1) + "|"]
    for name, per_class in means.items():
        lines.append(f"| {name} | " + " | ".join(f"{per_class[k]:.3f}" for k in classes) + " |")
    return "\n".join(lines)


def run_fuse_views(args: argparse.Namespace) -> None:
    from nnunet_25d.benchmark.matrix import parse_model_pair
    from nnunet_25d.errors import UserError
    from nnunet_25d.view_fusion.cross_validation import load_cross_validation, run_cross_validation

    try:
        models = [parse_model_pair(text) for text in args.models]
    except ValueError as error:
        raise UserError(f"--models: {error}")
    cv, identifiers, out = load_cross_validation(args.dataset, models, args.folds, args.plans)
    out = args.output or out
    means = run_cross_validation(cv, identifiers, out)
    labels = json.loads((cv.model_folders[0] / "dataset.json").read_text())["labels"]
    report = markdown_report(means, {value: name for name, value in labels.items()})
    (out / "cv_dice.md").write_text(
        f"Cross-validation Dice (folds {' '.join(map(str, args.folds))}), weights for each fold learned on the "
        f"other folds:\n\n{report}\n")
    print(f"{report}\n\nweights for test time: {out / FUSION_FILE}\napply them: nnunet25d apply-fusion --fusion "
          f"{out / FUSION_FILE} -i " + " ".join(f"<PRED_{t.split('__')[0]}>" for t in identifiers) + " -o <OUT>")


def run_apply_fusion(args: argparse.Namespace) -> None:
    from nnunet_25d.view_fusion.apply import apply_fusion

    cases = apply_fusion(args.fusion, args.input, args.output, args.save_probabilities, args.trust_pickles)
    print(f"fused {len(cases)} cases into {args.output}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    learn = sub.add_parser("fuse-views", help="learn per-model, per-class fusion weights on the five-fold CV "
                           "probabilities (nested by fold) and compare with softmax averaging")
    learn.add_argument("-d", "--dataset", required=True, help="dataset ID or name")
    learn.add_argument("--models", nargs="+", required=True, metavar="TRAINER:CONFIG",
                       help="models trained with --npz on every fold, e.g. the three views")
    learn.add_argument("-f", "--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    learn.add_argument("-p", "--plans", default="nnUNetPlans")
    learn.add_argument("-o", "--output", type=Path, default=None,
                       help="default: nnUNet_results/DatasetXXX/view_fusion/fusion___<models>___<folds>")
    learn.set_defaults(func=run_fuse_views)

    apply = sub.add_parser("apply-fusion", help="fuse nnUNetv2_predict --save_probabilities outputs with learned "
                           "weights")
    apply.add_argument("--fusion", type=Path, required=True, help=f"the {FUSION_FILE} written by fuse-views")
    apply.add_argument("-i", "--input", type=Path, nargs="+", required=True,
                       help="one prediction folder per model, in the order of fusion.json's models")
    apply.add_argument("-o", "--output", type=Path, required=True)
    apply.add_argument("--save-probabilities", action="store_true", help="also write the fused .npz")
    apply.add_argument("--trust-pickles", action="store_true",
                       help="where a case's segmentation is missing from the first prediction folder, take its "
                            "geometry from nnU-Net's <case>.pkl (unpickling can run code: only for folders you "
                            "trust; default: refuse)")
    apply.set_defaults(func=run_apply_fusion)
