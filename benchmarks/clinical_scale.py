"""Issue #20's numbers: slab-model inference at clinical size, against nnU-Net 2d, in one run on one machine.

``memory``: model folders as ``nnUNetv2_train`` writes them (plans.json, dataset.json, fold_0/checkpoint_final.pth)
for nnU-Net's 2d U-Net at a 512 x 512 patch (nnU-Net's 8-stage CT plan, features / 8 so that CPUs can run it) and
for ``nnUNetTrainer25D`` (the same 2D network behind a 3-slice slab, its plans derived by the trainer for a dataset
of that depth); a CT-like volume of 512 x 512 x D slices; then, each in its own process, nnU-Net 2d through stock
``nnUNetv2_predict``, the slab model through stock ``nnUNetv2_predict`` and through ``nnunet25d predict``. Per run:
peak memory of the process tree (PSS, sampled every 0.2 s), wall time, and the outcome (a refusal before the run names its
reason). ``--full-size`` adds the full-size networks at 256 x 256 for compute ratios. Test-time mirroring is off in
every run (4x less CPU time; it multiplies every path's compute alike).

``error``: in-process, the max absolute logit error against every slice's true slab (a float32 forward of each
slab over the whole 512 x 512 plane, which is one tile) of nnU-Net 2d's predictor on stacked slabs (2d's own
error), of ``nnUNetSlabPredictor`` and of stock nnU-Net on the slab model's tile; the logits are scaled to span
about 20 (a trained model's range) because float16 errors are absolute.

    python benchmarks/clinical_scale.py memory --workdir /tmp/clinical --out benchmarks/results/clinical_scale.md
    python benchmarks/clinical_scale.py error --out benchmarks/results/clinical_scale_error.md
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import SimpleITK as sitk
import torch

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.planning.configuration import TrainingSetup
from nnunet_25d.trainers.registry import TRAINERS

DATASET = "Dataset990_ClinicalScale"
SPACING = (2.5, 0.8, 0.8)  # z, y, x in mm
MEMORY_CAP_GB = 21.0  # this machine has 24 GB: a run past this is killed and reported
SLAB_TRAINER = "nnUNetTrainer25D"
STOCK_TRAINER = "nnUNetTrainer"


def unet_2d_configuration(in_plane: int, feature_divisor: int, depth: int) -> dict:
    """nnU-Net's 2d plan for CT at ``in_plane``^2 (stages until 4 x 4, features 32..512), features divided."""
    stages = int(np.log2(in_plane / 4)) + 1
    features = [max(1, min(32 * 2 ** i, 512) // feature_divisor) for i in range(stages)]
    return {
        "data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 12,
        "patch_size": [in_plane, in_plane], "median_image_size_in_voxels": [in_plane, in_plane],
        "spacing": list(SPACING[1:]), "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": stages, "features_per_stage": features, "conv_op": "torch.nn.modules.conv.Conv2d",
                "kernel_sizes": [[3, 3]] * stages, "strides": [[1, 1]] + [[2, 2]] * (stages - 1),
                "n_conv_per_stage": [2] * stages, "n_conv_per_stage_decoder": [2] * (stages - 1), "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        "batch_dice": True,
    }


def plans_for(in_plane: int, feature_divisor: int, depth: int) -> dict:
    return {
        "dataset_name": DATASET, "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": list(SPACING),
        "original_median_shape_after_transp": [depth, in_plane, in_plane], "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"2d": unet_2d_configuration(in_plane, feature_divisor, depth)},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 3000.0, "mean": 100.0, "median": 80.0, "min": -1000.0, "percentile_00_5": -1000.0,
            "percentile_99_5": 1500.0, "std": 300.0}},
    }


def dataset_json(classes: int) -> dict:
    labels = {"background": 0, **{f"organ_{i}": i for i in range(1, classes)}}
    return {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".mha"}


@dataclass(frozen=True)
class Case:
    depth: int
    classes: int
    in_plane: int = 512
    feature_divisor: int = 8

    @property
    def name(self) -> str:
        return f"{self.in_plane}x{self.in_plane}x{self.depth}_{self.classes}cls_f{self.feature_divisor}"


def write_model_folder(results: Path, trainer: str, plans: dict, classes: int) -> Path:
    """A model folder as nnUNetv2_train leaves it (random weights: memory and time do not depend on them)."""
    plans_manager_module = __import__("nnunetv2.utilities.plans_handling.plans_handler", fromlist=["PlansManager"])
    trainer_class = TRAINERS.get(trainer)
    if trainer_class is not None:
        plans = trainer_class.derive_plans(plans, "2d", TrainingSetup(volume_depth=plans[
            "original_median_shape_after_transp"][0]))
        build = trainer_class.build_network_architecture
        mirror_axes = (1, 2)
    else:
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
        build = nnUNetTrainer.build_network_architecture
        mirror_axes = (0, 1)
    manager = plans_manager_module.PlansManager(plans)
    network = build(manager, manager.get_configuration("2d"), 1, classes, False)
    folder = results / DATASET / f"{trainer}__nnUNetPlans__2d"
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps(dataset_json(classes)))
    torch.save({"network_weights": network.state_dict(), "trainer_name": trainer,
                "init_args": {"configuration": "2d", "fold": 0},
                "inference_allowed_mirroring_axes": mirror_axes}, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def write_volume(folder: Path, case: Case) -> None:
    """A CT-like volume: soft tissue around 40 HU, air outside a body ellipse, noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:case.in_plane, :case.in_plane] / case.in_plane - 0.5
    body = (y / 0.4) ** 2 + (x / 0.45) ** 2 < 1
    image = np.where(body, 40.0, -1000.0).astype(np.float32)[None].repeat(case.depth, 0)
    image += rng.normal(0, 20, (1, case.in_plane, case.in_plane)).astype(np.float32)
    itk = sitk.GetImageFromArray(image)
    itk.SetSpacing(tuple(reversed(SPACING)))
    sitk.WriteImage(itk, str(folder / "case_000_0000.mha"))


def tree_memory(process: psutil.Process) -> int:
    """Proportional set size of the process and its workers: shared pages (torch's libraries in every worker)
    counted once, where summed RSS counts them per process."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def measured_run(command: list[str], env: dict, log: Path) -> dict:
    """Wall time, peak tree memory and outcome of ``command``; killed past ``MEMORY_CAP_GB``."""
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        watched, peak, killed = psutil.Process(process.pid), 0, False
        while process.poll() is None:
            peak = max(peak, tree_memory(watched))
            if peak > MEMORY_CAP_GB * 2 ** 30:
                os.killpg(process.pid, 9)
                killed = True
            time.sleep(0.2)
    wall = time.perf_counter() - start
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:] or [""]
    if killed:
        outcome = f"killed at {MEMORY_CAP_GB:.0f} GB"
    elif process.returncode:
        outcome = "refused: " + tail[0][-160:]
    else:
        outcome = "ok"
    return {"wall_s": wall, "peak_gb": peak / 2 ** 30, "outcome": outcome}


def predict_commands(images: Path, out: Path, trainer: str) -> dict[str, list[str]]:
    common = ["-i", str(images), "-d", DATASET, "-c", "2d", "-tr", trainer, "-f", "0", "-device", "cpu",
              "--disable_tta", "-npp", "1", "-nps", "1", "--disable_progress_bar"]
    return {"nnUNetv2_predict": ["nnUNetv2_predict", "-o", str(out / "stock"), *common],
            "nnunet25d predict": ["nnunet25d", "predict", "-o", str(out / "slab"), *common]}


def memory_part(args: argparse.Namespace) -> None:
    work = Path(args.workdir)
    cases = [Case(*map(int, c.split(":"))) for c in args.cases] if not args.smoke else [Case(6, 3, 64)]
    if args.full_size:
        cases.append(Case(80, 3, in_plane=256, feature_divisor=1))
    rows = []
    for case in cases:
        root = work / case.name
        results, images = root / "results", root / "imagesTs"
        write_volume(images, case)
        env = {**os.environ, "nnUNet_results": str(results), "nnUNet_raw": str(root / "raw"),
               "nnUNet_preprocessed": str(root / "preprocessed"), "nnUNet_extTrainer": str(TRAINER_FOLDER),
               "nnUNet_def_n_proc": "1"}
        plans = plans_for(case.in_plane, case.feature_divisor, case.depth)
        runs = [(STOCK_TRAINER, "nnUNetv2_predict"), (SLAB_TRAINER, "nnunet25d predict")]
        if not args.no_stock_slab:
            runs.insert(1, (SLAB_TRAINER, "nnUNetv2_predict"))
        for trainer, path in runs:
            write_model_folder(results, trainer, copy.deepcopy(plans), case.classes)
            command = predict_commands(images, root / trainer, trainer)[path]
            print(f"{case.name}: {trainer} through {path} ...", flush=True)
            result = measured_run(command, env, root / f"{trainer}_{path.replace(' ', '_')}.log")
            tile = json.loads((results / DATASET / f"{trainer}__nnUNetPlans__2d" / "plans.json").read_text())[
                "configurations"]["2d"]["patch_size"]
            rows.append({"case": case.name, "model": "nnU-Net 2d" if trainer == STOCK_TRAINER else trainer,
                         "path": path, "tile": "x".join(map(str, tile)), **result})
            print(f"   {rows[-1]}", flush=True)
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    write_memory_table(rows, Path(args.out))


def write_memory_table(rows: list[dict], out: Path) -> None:
    baseline = {r["case"]: r for r in rows if r["model"] == "nnU-Net 2d"}
    lines = ["# Clinical-scale inference: peak memory and wall time (one run, this machine)", "",
             f"Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, no GPU; "
             f"`python benchmarks/clinical_scale.py memory`; test-time mirroring off; -npp 1 -nps 1.", "",
             "| volume | model | path | tile | peak memory (PSS, GB) | vs 2d | wall (s) | vs 2d | outcome |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = baseline[r["case"]]
        ok = r["outcome"] == "ok"
        lines.append(f"| {r['case']} | {r['model']} | `{r['path']}` | {r['tile']} | {r['peak_gb']:.2f} | "
                     f"{r['peak_gb'] / b['peak_gb']:.2f}x | {r['wall_s']:.1f} | "
                     f"{(r['wall_s'] / b['wall_s']) if ok else float('nan'):.2f}x | {r['outcome']} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


@torch.no_grad()
def error_part(args: argparse.Namespace) -> None:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_25d.architectures.blocks.stock_tile import StockTileMemoryError
    from nnunet_25d.inference.slab_predictor import nnUNetSlabPredictor

    torch.set_num_threads(os.cpu_count())
    lines = ["# Clinical-scale inference: max absolute logit error against true slabs", "",
             "`python benchmarks/clinical_scale.py error`; 512 x 512 in-plane (one tile), 3 classes, features / 8, "
             "logits scaled to span about 20; no mirroring.", "",
             "| slices | nnU-Net 2d's own (stacked slabs) | `nnunet25d predict` | stock `nnUNetv2_predict` (tile) |",
             "|---|---|---|---|"]
    for depth in args.depths:
        plans = plans_for(512, 8, depth)
        derived = TRAINERS[SLAB_TRAINER].derive_plans(plans, "2d", TrainingSetup(volume_depth=depth))
        manager = PlansManager(derived)
        configuration = manager.get_configuration("2d")
        torch.manual_seed(0)
        network = TRAINERS[SLAB_TRAINER].build_network_architecture(manager, configuration, 1, 3, False).eval()
        head = network.network_2d.decoder.seg_layers[-1]
        volume = torch.randn(1, depth, 512, 512)
        reference = true_slabs(network, volume)
        head.weight *= 20 / (reference.max() - reference.min())
        head.bias *= 20 / (reference.max() - reference.min())
        reference = true_slabs(network, volume)
        errors = []
        for kind in ("2d", "slab", "stock"):
            if kind == "2d":
                stacked = torch.cat([torch.nn.functional.pad(volume, (0, 0, 0, 0, 1, 1))[:, s:s + depth]
                                     for s in range(3)])
                predictor = nnUNetPredictor(0.5, True, False, False, torch.device("cpu"), allow_tqdm=False)
                base = PlansManager(plans)
                predictor.manual_initialization(_Stacked(network), base, base.get_configuration("2d"), None,
                                                dataset_json(3), "2d", None)
                data = stacked
            else:
                predictor = (nnUNetSlabPredictor if kind == "slab" else nnUNetPredictor)(
                    0.5, True, False, False, torch.device("cpu"), allow_tqdm=False)
                predictor.manual_initialization(network, manager, configuration, None, dataset_json(3), "x", None)
                data = volume
            try:
                logits = predictor.predict_sliding_window_return_logits(data)
                errors.append(f"{(logits.float() - reference).abs().max().item():.4f}")
            except StockTileMemoryError:
                errors.append(f"refused (tile {configuration.patch_size})")
            print(depth, kind, errors[-1], flush=True)
        lines.append(f"| {depth} | " + " | ".join(errors) + " |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(Path(args.out).read_text())


class _Stacked(torch.nn.Module):
    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network.network_2d(self.network.stem(x[:, :, None] if x.shape[1] == 1 else
                                                         x.reshape(x.shape[0], 1, x.shape[1], *x.shape[2:])))


def true_slabs(network, volume: torch.Tensor) -> torch.Tensor:
    padded = torch.nn.functional.pad(volume, (0, 0, 0, 0, 1, 1))[None]
    out = [network.network_2d(network.stem(padded[:, :, z:z + 3])) for z in range(volume.shape[1])]
    return torch.stack(out, 2)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    memory = sub.add_parser("memory")
    memory.add_argument("--workdir", default="/tmp/nnunet25d_clinical")
    memory.add_argument("--out", default="benchmarks/results/clinical_scale.md")
    memory.add_argument("--full-size", action="store_true")
    memory.add_argument("--cases", nargs="+", default=["80:3", "80:14", "300:3", "300:14", "900:3"],
                        metavar="SLICES:CLASSES")
    memory.add_argument("--no-stock-slab", action="store_true", help="skip the slab model through nnUNetv2_predict")
    memory.add_argument("--smoke", action="store_true", help="one 64 x 64 x 6 volume: checks the script")
    memory.set_defaults(func=memory_part)
    error = sub.add_parser("error")
    error.add_argument("--depths", type=int, nargs="+", default=[80, 300])
    error.add_argument("--out", default="benchmarks/results/clinical_scale_error.md")
    error.set_defaults(func=error_part)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
