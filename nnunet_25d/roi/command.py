"""The ``nnunet25d make-roi-dataset`` command."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_25d.roi.body import BODY_DILATION_MM, BODY_EROSION_MM, CT_BODY_THRESHOLD_HU
from nnunet_25d.roi.crop import PAPER_SLICE_THICKNESS, ROI_SCALES


def _make_roi_dataset(args: argparse.Namespace) -> None:
    from nnunet_25d.roi.dataset import write_roi_dataset

    margin = tuple(args.margin_mm) if args.margin_mm else None
    print(write_roi_dataset(args.dataset, args.target_id, args.scale, margin, args.slice_thickness, args.raw,
                            from_label=args.roi_from_label, fold=args.fold, threshold=args.body_threshold))


def _ensemble_roi(args: argparse.Namespace) -> None:
    from nnunet_25d.roi.fusion import dice_table, fuse_roi_cross_validation, fuse_roi_predictions

    if args.test_predictions:
        from nnunet_25d.errors import UserError

        if not args.output:
            raise UserError("--test-predictions writes the fused segmentations to --output FOLDER: give one")
        pairs = [parse_prediction(text) for text in args.test_predictions]
        summary = fuse_roi_predictions(args.dataset, pairs, args.output, args.raw)
        print(dice_table(summary["mean_dice"]) if summary["mean_dice"] else f"{len(summary['cases'])} cases written "
              f"to {args.output} (no labelsTs to score them)", end="" if summary["mean_dice"] else "\n")
        return
    models = [parse_model(text) for text in args.models]
    summary = fuse_roi_cross_validation(args.dataset, models, args.folds, args.plans, args.output, args.raw)
    print(dice_table(summary["mean_dice"]), end="")


def parse_model(text: str) -> tuple[str, str, str]:
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        from nnunet_25d.errors import UserError

        raise UserError(f"--models takes ROI_DATASET:TRAINER:CONFIGURATION, got {text!r}")
    return parts[0], parts[1], parts[2]


def parse_prediction(text: str) -> tuple[str, Path]:
    dataset, _, folder = text.partition(":")
    if not dataset or not folder:
        from nnunet_25d.errors import UserError

        raise UserError(f"--test-predictions takes ROI_DATASET:FOLDER, got {text!r}")
    return dataset, Path(folder)


def add_parser(sub) -> None:
    add_make_parser(sub)
    add_ensemble_parser(sub)


def add_ensemble_parser(sub) -> None:
    parser = sub.add_parser(
        "ensemble-roi", help="Mei et al.'s multi-scale ensemble: fuse the CV of models trained on ROI datasets",
        description="Map every model's --npz validation probabilities (each trained on a make-roi-dataset crop of "
                    "the source dataset) back onto the source cases, average them, keep each class's largest "
                    "component and score the result against the source labels, beside every model alone. An "
                    "image-placed ROI dataset must not have learned its fields of view from a validation case "
                    "(make-roi-dataset --fold); a --roi-from-label dataset is the oracle and is named ...Oracle.")
    parser.add_argument("-d", "--dataset", required=True, help="the source dataset (ID or DatasetXXX_Name)")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--models", nargs="+", metavar="ROI_DATASET:TRAINER:CONFIGURATION",
                       help="fuse the models' cross-validation (--npz validation outputs)")
    given.add_argument("--test-predictions", nargs="+", metavar="ROI_DATASET:FOLDER",
                       help="fuse predictions of the image-placed ROI datasets' imagesTs (nnUNetv2_predict "
                            "--save_probabilities into FOLDER) onto the source's imagesTs, into --output; scored "
                            "against labelsTs where present")
    parser.add_argument("-f", "--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--plans", default="nnUNetPlans")
    parser.add_argument("--output", type=Path, help="default: nnUNet_results/<source>/roi_ensembles/<models>")
    parser.add_argument("--raw", type=Path, help="nnUNet_raw folder (default: $nnUNet_raw)")
    parser.set_defaults(func=_ensemble_roi)


def add_make_parser(sub) -> None:
    margins = ", ".join(f"{name} {'/'.join(f'{m:g}' for m in margin)}" for name, margin in ROI_SCALES.items())
    parser = sub.add_parser(
        "make-roi-dataset",
        help="write one scale of Mei et al.'s multi-scale ROI crops of a raw dataset as a new raw dataset",
        description="Crop every case of a raw dataset (imagesTr, and imagesTs where present) to one field of view "
                    "and resample it to one slice thickness; write the crops as a new nnU-Net raw dataset (with "
                    "roi.json: how the crops were placed and each case's box in the source voxels), to plan, "
                    "preprocess and train like any other. The field of view is found from the image alone, as "
                    f"Mei et al.'s code does: a body mask per slice (threshold {CT_BODY_THRESHOLD_HU:g} HU for CT, "
                    f"Otsu's for other modalities; erosion {BODY_EROSION_MM:g} mm, dilation {BODY_DILATION_MM:g} mm, "
                    "largest component, holes filled), its bounding box, and the scale's fractions of that box, "
                    "learned from the training cases' labels: small holds every training target, large is the body "
                    "box, middle half-way. --roi-from-label (the oracle ablation) crops each training case around "
                    f"its own label's box grown by the scale's margins instead (z/y/x mm: {margins}).")
    parser.add_argument("-d", "--dataset", required=True, help="source dataset ID or DatasetXXX_Name")
    parser.add_argument("--target-id", type=int, required=True, help="ID of the new dataset")
    parser.add_argument("--scale", default="middle", help="field of view: small, middle, large (default middle)")
    parser.add_argument("--fold", type=int,
                        help="learn the fractions from this fold's training cases only (nnU-Net's 5-fold split), so "
                             "that its validation scores stay honest (default: every labelled case)")
    parser.add_argument("--body-threshold", type=float,
                        help="intensity above which a voxel is body, instead of the modality's")
    parser.add_argument("--roi-from-label", action="store_true",
                        help="oracle ablation: crop around each case's own label (needs labels; imagesTs not cropped)")
    parser.add_argument("--margin-mm", type=float, nargs=3, metavar=("Z", "Y", "X"),
                        help="with --roi-from-label: margins on each side of the label's box instead of the scale's")
    parser.add_argument("--slice-thickness", type=float, default=PAPER_SLICE_THICKNESS,
                        help="mm between the crops' slices (default 3, the paper's)")
    parser.add_argument("--raw", type=Path, help="nnUNet_raw folder (default: $nnUNet_raw)")
    parser.set_defaults(func=_make_roi_dataset)
