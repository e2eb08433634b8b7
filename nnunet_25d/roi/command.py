"""The ``nnunet25d make-roi-dataset`` command."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_25d.roi.crop import PAPER_SLICE_THICKNESS, ROI_SCALES


def _make_roi_dataset(args: argparse.Namespace) -> None:
    from nnunet_25d.roi.dataset import write_roi_dataset

    margin = tuple(args.margin_mm) if args.margin_mm else None
    print(write_roi_dataset(args.dataset, args.target_id, args.scale, margin, args.slice_thickness, args.raw))


def add_parser(sub) -> None:
    scales = ", ".join(f"{name} {'/'.join(f'{m:g}' for m in margin)}" for name, margin in ROI_SCALES.items())
    parser = sub.add_parser(
        "make-roi-dataset",
        help="write one scale of Mei et al.'s multi-scale ROI crops of a raw dataset as a new raw dataset",
        description="Crop every training case of a raw dataset to its foreground's bounding box grown by the "
                    f"scale's margins (z/y/x mm: {scales}) and resample it to one slice thickness; write the crops "
                    "as a new nnU-Net raw dataset (with roi.json: each case's box in the source voxels), to plan, "
                    "preprocess and train like any other.")
    parser.add_argument("-d", "--dataset", required=True, help="source dataset ID or DatasetXXX_Name")
    parser.add_argument("--target-id", type=int, required=True, help="ID of the new dataset")
    parser.add_argument("--scale", default="middle", help=f"field of view: {', '.join(ROI_SCALES)} (default middle)")
    parser.add_argument("--margin-mm", type=float, nargs=3, metavar=("Z", "Y", "X"),
                        help="margins on each side of the foreground box instead of the scale's")
    parser.add_argument("--slice-thickness", type=float, default=PAPER_SLICE_THICKNESS,
                        help="mm between the crops' slices (default 3, the paper's)")
    parser.add_argument("--raw", type=Path, help="nnUNet_raw folder (default: $nnUNet_raw)")
    parser.set_defaults(func=_make_roi_dataset)
