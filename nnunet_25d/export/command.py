"""``nnunet25d export``: each fold of a trained slab model as ONNX, plus the JSON the runtime reads."""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "export", help="write a trained slab model's folds as ONNX files plus the JSON `nnunet25d predict-onnx` "
                       "needs (deployment without torch or nnU-Net)",
        description="Each fold's 2D network (stem + 2D network, deep supervision off) as an ONNX graph taking "
                    "(slices, channels, slab, h, w) slabs, batch axis dynamic; nnunet25d_model.json holds the "
                    "preprocessing, slab geometry, tiling, mirroring, resampling and labels.")
    parser.add_argument("-d", required=True, help="dataset name or ID")
    parser.add_argument("-c", required=True, help="configuration (2d for the slab trainers, 3d_fullres for views)")
    parser.add_argument("-tr", required=True, help="trainer the model was trained with")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-f", nargs="+", default=["0", "1", "2", "3", "4"], help="folds to export (or 'all')")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint name in each fold folder")
    parser.add_argument("-o", required=True, help="output model folder (created if missing)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's, >= 18)")
    parser.add_argument("--trust-pickles", action="store_true",
                        help="load checkpoints in full even where they hold more than weights and plain values "
                             "(code would run): only for checkpoints from a source you trust")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from nnunet_25d.export.exporter import export_model
    from nnunet_25d.inference.model_folder import parse_folds, with_plugin_trainers

    with_plugin_trainers()
    started = time.perf_counter()
    lines = export_model(args.d, args.tr, args.p, args.c, parse_folds(args.f), args.chk, Path(args.o), args.opset,
                         args)
    for line in lines:
        print(line)
    print(f"exported in {time.perf_counter() - started:.1f} s")
