"""``nnunet25d predict-onnx``: segment a folder of images with an exported model folder, on ONNX Runtime."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from nnunet_25d.errors import UserError


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "predict-onnx", help="segment images with a model folder written by `nnunet25d export` (ONNX Runtime; no "
                             "torch or nnU-Net needed)",
        description="The slab predictor of `nnunet25d predict` on ONNX Runtime: nnU-Net's preprocessing, every "
                    "slice from its true slab, the folds' mean, segmentations on the input's grid (and .npz/.pkl "
                    "probabilities for nnUNetv2_ensemble).")
    parser.add_argument("-i", required=True, help="input folder (CASE_0000.nii.gz, CASE_0001.nii.gz ... per case)")
    parser.add_argument("-o", required=True, help="output folder (created if missing)")
    parser.add_argument("-m", required=True, help="model folder written by `nnunet25d export`")
    parser.add_argument("--providers", nargs="+", default=["CPUExecutionProvider"],
                        help="ONNX Runtime execution providers in order of preference (e.g. CUDAExecutionProvider "
                             "CPUExecutionProvider)")
    parser.add_argument("-step_size", type=float, default=None, help="in-plane tile step (default: the export's)")
    parser.add_argument("--disable_tta", action="store_true", help="no mirroring at test time")
    parser.add_argument("--save_probabilities", action="store_true", help="also write .npz/.pkl (for ensembling)")
    parser.add_argument("--continue_prediction", "--c", action="store_true", help="keep files already predicted")
    parser.add_argument("--slices-per-forward", type=int, default=1, metavar="N", help="slices per network call")
    parser.add_argument("--disable_progress_bar", action="store_true")
    parser.set_defaults(func=run)


def available_providers(wanted: list[str]) -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    unknown = [p for p in wanted if p not in available]
    if unknown:
        raise UserError(f"ONNX Runtime here has no {', '.join(unknown)} (available: {', '.join(available)}); for "
                        f"CUDA install onnxruntime-gpu instead of onnxruntime")
    return wanted


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from nnunet_25d.datasets.cases import cases_in, check_output_folder
    from nnunet_25d.files import still_to_predict
    from nnunet_25d.deploy.memory import check_cases_fit
    from nnunet_25d.deploy.predictor import OnnxSlabPredictor, predict_cases

    if args.slices_per_forward < 1:
        raise UserError(f"--slices-per-forward must be at least 1, got {args.slices_per_forward}")
    with tqdm(desc="tiles", unit="tile", disable=args.disable_progress_bar) as bar:
        predictor = OnnxSlabPredictor(Path(args.m), available_providers(args.providers), not args.disable_tta,
                                      args.step_size, args.slices_per_forward, bar.update)
        cases = cases_in(Path(args.i), predictor.model["file_ending"], predictor.model["input_channels"])
        check_output_folder(Path(args.i), Path(args.o))
        output = Path(args.o)
        output.mkdir(parents=True, exist_ok=True)
        todo = still_to_predict(cases, output, predictor.model["file_ending"], args.save_probabilities,
                                args.continue_prediction)
        check_cases_fit(todo, {"spacing": predictor.model["spacing"]}, predictor.model["transpose_forward"],
                        predictor.model["num_heads"], "cpu", False)
        predict_cases(predictor, todo, output, args.save_probabilities, bar)
    copy_nnunet_files(Path(args.m), output)


def copy_nnunet_files(model_dir: Path, output: Path) -> None:
    """The model's dataset.json and plans.json beside the predictions, as ``nnunet25d predict`` writes them (for
    ``nnUNetv2_evaluate_folder -djfile -pfile`` and ``nnUNetv2_ensemble``); an export made before they were
    exported has none: say how to get them."""
    from nnunet_25d.deploy.model_description import NNUNET_FILES

    missing = [name for name in NNUNET_FILES if not (model_dir / name).is_file()]
    for name in NNUNET_FILES:
        if name not in missing:
            shutil.copyfile(model_dir / name, output / name)
    if missing:
        print(f"note: {model_dir} holds no {' or '.join(missing)} (exported by an earlier version): copy them from the "
              f"trained model folder, or export again, for nnUNetv2_evaluate_folder and nnUNetv2_ensemble")
