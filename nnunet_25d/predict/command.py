"""``nnunet25d predict``: ``nnUNetv2_predict`` with :class:`nnUNetSlabPredictor` (same arguments, same files)."""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
from pathlib import Path

from nnunet_25d.datasets.cases import cases_in, check_output_folder
from nnunet_25d.errors import UserError
from nnunet_25d.files import PARTIAL_PREFIX, move_into_place, output_files, still_to_predict, write_failed
from nnunet_25d.deploy.memory import check_cases_fit
from nnunet_25d.inference.model_folder import (check_checkpoints_load_safely, check_model_folder, model_folder_of,
                                               parse_folds, with_plugin_trainers)
from nnunet_25d.predict.engine import BACKENDS, chosen_backend, graphs_cached, onnx_predictor, plain_3d_network


# what the demo and the benchmark predict with: every model, slab models with the exact slab predictor
PREDICT_COMMAND = ("nnunet25d", "predict")


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "predict", help="nnUNetv2_predict for slab models: every slice from its true slab at any depth, with "
                        "nnU-Net 2d's memory (any other model: nnU-Net's own sliding window)",
        description="Same arguments and outputs as nnUNetv2_predict (segmentations, --save_probabilities .npz/.pkl "
                    "for nnUNetv2_ensemble, plans.json, dataset.json, predict_from_raw_data_args.json).")
    parser.add_argument("-i", required=True, help="input folder (files named like imagesTr: CASE_0000.nii.gz ...)")
    parser.add_argument("-o", required=True, help="output folder (created if missing)")
    parser.add_argument("-d", required=True, help="dataset name or ID")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-tr", default="nnUNetTrainer", help="trainer the model was trained with")
    parser.add_argument("-c", required=True, help="configuration (2d for the slab trainers, 3d_fullres for views)")
    parser.add_argument("-f", nargs="+", default=["0", "1", "2", "3", "4"], help="folds to ensemble (or 'all')")
    parser.add_argument("-step_size", type=float, default=0.5, help="in-plane tile step, fraction of the tile")
    parser.add_argument("--disable_tta", action="store_true", help="no mirroring at test time")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--save_probabilities", action="store_true", help="also write .npz/.pkl (for ensembling)")
    parser.add_argument("--continue_prediction", "--c", action="store_true", help="keep files already predicted")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint name in each fold folder")
    parser.add_argument("-npp", type=int, default=3, help="processes for preprocessing")
    parser.add_argument("-nps", type=int, default=3, help="processes for segmentation export")
    parser.add_argument("-prev_stage_predictions", default=None, help="previous stage (cascades)")
    parser.add_argument("-num_parts", type=int, default=1, help="split the cases over this many calls")
    parser.add_argument("-part_id", type=int, default=0, help="which part this call predicts (0-based)")
    parser.add_argument("-device", default=None, choices=("cuda", "cpu", "mps"),
                        help="default: cuda where torch sees a CUDA GPU, else cpu")
    parser.add_argument("--disable_progress_bar", action="store_true")
    parser.add_argument("--not_on_device", action="store_true", help="keep the volume's logits in CPU memory")
    parser.add_argument("--slices-per-forward", type=int, default=None, metavar="N",
                        help="slices per 2D pass (default: as many as a training step supervises)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="what runs the network: onnxruntime (CPU; each fold's graph exported once and cached "
                             "beside its checkpoint), torch (nnU-Net's predictor), or auto (default: onnxruntime on "
                             "CPU for every model it can run, torch otherwise)")
    parser.add_argument("--trust-pickles", action="store_true",
                        help="load checkpoints in full even where they hold more than weights and plain values "
                             "(code would run): only for checkpoints from a source you trust")
    parser.set_defaults(func=run)


def torch_device(name: str):
    import torch

    if name == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    elif name == "cuda":
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    return torch.device(name)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def parts_of(cases: dict[str, list[Path]], num_parts: int, part_id: int) -> dict[str, list[Path]]:
    """The cases of one ``-part_id`` of ``-num_parts``, as nnU-Net deals them out (every num_parts-th case)."""
    return {case: cases[case] for case in sorted(cases)[part_id::num_parts]}


def publish(staging: Path, output: Path, cases: list[str], file_ending: str, save_probabilities: bool) -> None:
    """Move each staged output, once checked complete, to its final name; then nnU-Net's JSON files."""
    for case in cases:
        for name in output_files(case, file_ending, save_probabilities):
            move_into_place(staging / name, output / name)
    for name in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
        if (staging / name).is_file():
            move_into_place(staging / name, output / name)
    shutil.rmtree(staging, ignore_errors=True)


# the line each run prints first, naming the engine (the benchmark's cost tables read it from the log)
ENGINE_LINE = "nnunet25d predict: network on {}"
ENGINES = {"onnxruntime": "ONNX Runtime", "torch": "PyTorch"}
WRITE_FAILURE_WORDS = ("No space left", "write", "Write", "Read-only", "Permission denied")


def run(args: argparse.Namespace) -> None:
    if args.part_id >= args.num_parts:
        raise UserError(f"-part_id {args.part_id} must be below -num_parts {args.num_parts}")
    with_plugin_trainers()
    folds = parse_folds(args.f)
    model_folder = model_folder_of(args.d, args.tr, args.p, args.c)
    device = args.device or default_device()
    backend = chosen_backend(args.backend, device)
    check_model_folder(model_folder, folds, args.chk, args, unpickle_check=False)
    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    plans = json.loads((model_folder / "plans.json").read_text())
    on_torch = why_pytorch(backend, plans, args)
    if on_torch is not None or not graphs_cached(model_folder, folds, args.chk):
        check_checkpoints_load_safely(model_folder, folds, args.chk, args)  # before any work: they will be unpickled
    file_ending = dataset_json["file_ending"]
    channels = len(dataset_json.get("channel_names", dataset_json.get("modality", {})))
    cases = parts_of(cases_in(Path(args.i), file_ending, channels), args.num_parts, args.part_id)
    check_output_folder(Path(args.i), Path(args.o))
    output = Path(args.o)
    output.mkdir(parents=True, exist_ok=True)
    todo = still_to_predict(cases, output, file_ending, args.save_probabilities, args.continue_prediction)
    if not todo:
        print(f"all {len(cases)} case(s) already predicted in {output}")
        return
    check_cases_fit(todo, plans["configurations"][args.c], plans.get("transpose_forward", [0, 1, 2]),
                    len(dataset_json["labels"]), device, not args.not_on_device)
    staging = output / f"{PARTIAL_PREFIX}part{args.part_id}"  # outputs reach their final names only when complete
    shutil.rmtree(staging, ignore_errors=True)
    try:
        predict_into(staging, todo, model_folder, folds, device, on_torch, args)
    except (OSError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not any(word in str(error) for word in WRITE_FAILURE_WORDS):
            raise
        shutil.rmtree(staging, ignore_errors=True)
        raise write_failed(output, getattr(error, "strerror", None) or " ".join(str(error).split())[:200]) from error
    publish(staging, output, list(todo), file_ending, args.save_probabilities)


def why_pytorch(backend: str, plans: dict, args: argparse.Namespace) -> str | None:
    """Why the network runs on PyTorch ("" where asked for), or None: ONNX Runtime may run it."""
    if backend == "torch":
        return ""
    if args.prev_stage_predictions:
        return "a cascade's second stage: ONNX Runtime runs single-stage models"
    if plain_3d_network(plans, args.c):
        return f"{args.c} is a 3D network: ONNX Runtime runs 2D networks over slabs or slices"
    return None


def predict_into(staging: Path, todo: dict[str, list[Path]], model_folder: Path, folds: list, device: str,
                 on_torch: str | None, args: argparse.Namespace) -> None:
    """Every case of ``todo`` into ``staging``: on ONNX Runtime unless ``on_torch`` (:func:`why_pytorch`) says why
    not, or the model turns out not to export."""
    if on_torch is None and predict_on_onnxruntime(staging, todo, model_folder, folds, args):
        return
    if on_torch:
        print(f"nnunet25d predict: running on PyTorch ({on_torch})")
    predict_on_torch(staging, todo, model_folder, folds, device, args)


def predict_on_onnxruntime(staging: Path, todo: dict[str, list[Path]], model_folder: Path, folds: list,
                           args: argparse.Namespace) -> bool:
    """False (after one line saying why) where the model cannot run on ONNX Runtime."""
    from tqdm import tqdm

    from nnunet_25d.deploy.predictor import predict_cases

    identity = {"dataset": model_folder.parent.name, "trainer": args.tr, "plans": args.p, "configuration": args.c}
    with tqdm(desc="tiles", unit="tile", disable=args.disable_progress_bar) as bar:
        predictor = onnx_predictor(model_folder, folds, args.chk, args.tr, identity, {
            "use_mirroring": not args.disable_tta, "step_size": args.step_size,
            "slices_per_forward": args.slices_per_forward or 1, "progress": bar.update}, args)
        if predictor is None:
            return False
        print(ENGINE_LINE.format(ENGINES["onnxruntime"]), flush=True)
        staging.mkdir(parents=True)
        predict_cases(predictor, todo, staging, args.save_probabilities, bar)
    for name in ("dataset.json", "plans.json"):
        shutil.copyfile(model_folder / name, staging / name)
    record = {key: value for key, value in vars(args).items() if key != "func"}
    (staging / "predict_from_raw_data_args.json").write_text(json.dumps({**record, "engine": "onnxruntime"}, indent=1))
    return True


def predict_on_torch(staging: Path, todo: dict[str, list[Path]], model_folder: Path, folds: list, device: str,
                     args: argparse.Namespace) -> None:
    from nnunet_25d.inference.slab_predictor import nnUNetSlabPredictor

    print(ENGINE_LINE.format(ENGINES["torch"]), flush=True)
    predictor = nnUNetSlabPredictor(tile_step_size=args.step_size, use_gaussian=True,
                                    use_mirroring=not args.disable_tta,
                                    perform_everything_on_device=not args.not_on_device,
                                    device=torch_device(device), verbose=args.verbose,
                                    verbose_preprocessing=args.verbose, allow_tqdm=not args.disable_progress_bar,
                                    slices_per_forward=args.slices_per_forward)
    predictor.initialize_from_trained_model_folder(str(model_folder), folds, args.chk)
    predictor.predict_from_files([[str(f) for f in files] for files in todo.values()],
                                 [str(staging / case) for case in todo], save_probabilities=args.save_probabilities,
                                 overwrite=True, num_processes_preprocessing=args.npp,
                                 num_processes_segmentation_export=args.nps,
                                 folder_with_segs_from_prev_stage=args.prev_stage_predictions)
