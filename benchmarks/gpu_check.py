"""The GPU check: a CUDA training step and a prediction of the default slab model (nnUNetTrainer25D) and of nnU-Net
2d at 512 x 512 x 300 slices x 8 classes with the full-size networks (nnU-Net's 8-stage CT plan), ready to run in
the few minutes a GPU is lent. One Markdown table: wall time and peak GPU memory
(``torch.cuda.max_memory_allocated``) per row.

Training rows: one network step (forward, cross-entropy, backward, SGD) on a batch as nnU-Net plans it, AMP on, with
and without ``channels_last`` and ``torch.compile``; the median of the timed steps after warm-up. Prediction rows:
the whole volume's sliding window with mirroring (nnU-Net 2d: ``nnUNetPredictor``; the slab model:
``nnUNetSlabPredictor``, and the same sliding window on ONNX Runtime's CUDA provider where onnxruntime-gpu is
installed); then the out-of-memory fallback forced once (the first on-device attempt raises, the results move to
CPU). ``--dry-run``: the same code on CPU at 64 x 64 x 12, features / 8 (the test suite runs it so it cannot rot).

    bash benchmarks/gpu_check.sh --out benchmarks/results/gpu_check.md      # on a GPU, <= 8 minutes
    bash benchmarks/gpu_check.sh --dry-run --out /tmp/gpu_check.md          # on CPU, seconds
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from clinical_scale import SLAB_TRAINER, plans_for
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_25d.inference.slab_predictor import nnUNetSlabPredictor
from nnunet_25d.planning.configuration import TrainingSetup, training_patch_size
from nnunet_25d.trainers.registry import TRAINERS


@dataclass(frozen=True)
class Size:
    in_plane: int
    depth: int
    classes: int
    feature_divisor: int
    train_steps: int


FULL = Size(512, 300, 8, 1, 5)
DRY = Size(64, 12, 3, 8, 2)


def model(trainer: str, size: Size, training: bool):
    """(network, plans manager, configuration manager, mirror axes) of ``trainer`` as nnU-Net builds them."""
    plans = plans_for(size.in_plane, size.feature_divisor, size.depth)
    if trainer == SLAB_TRAINER:
        trainer_class = TRAINERS[SLAB_TRAINER]
        plans = trainer_class.derive_plans(copy.deepcopy(plans), "2d", TrainingSetup(volume_depth=size.depth))
        build, mirror_axes = trainer_class.build_network_architecture, (1, 2)
    else:
        build, mirror_axes = nnUNetTrainer.build_network_architecture, (0, 1)
    manager = PlansManager(plans)
    configuration = manager.get_configuration("2d")
    network = build(manager, configuration, 1, size.classes, False)
    return network, manager, configuration, mirror_axes


def batch(network: torch.nn.Module, configuration, size: Size, device: torch.device
          ) -> tuple[torch.Tensor, torch.Tensor]:
    patch = list(configuration.patch_size)
    if hasattr(network, "slab_size"):  # the slab trainer's thin training patch; it supervises the interior slices
        patch = training_patch_size(configuration.configuration)
    shape = [configuration.batch_size, 1, *patch]
    images = torch.randn(shape, device=device)
    if hasattr(network, "slab_size"):
        patch = [patch[0] - 2 * (network.slab_size // 2), *patch[1:]]
    target = torch.randint(0, size.classes, (shape[0], *patch), device=device)
    return images, target


def peak_memory(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_row(trainer: str, size: Size, device: torch.device, channels_last: bool, compiled: bool) -> dict:
    if compiled and device.type != "cuda":
        return {"what": "train step", "outcome": "skipped: dry run (torch.compile on CPU takes a minute)"}
    network, _, configuration, _ = model(trainer, size, True)
    network = network.to(device).train()
    if hasattr(network, "interior_only"):  # as the slab trainer trains it: the patch's interior slices
        network.interior_only = True
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    step_network = torch.compile(network) if compiled else network
    optimiser = torch.optim.SGD(network.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    images, target = batch(network, configuration, size, device)
    if channels_last and images.ndim == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    times = []
    reset_peak(device)
    for step in range(size.train_steps + 2):  # two warm-up steps (compilation, cuDNN autotuning)
        synchronise(device)
        start = time.perf_counter()
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(step_network(images), target)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        synchronise(device)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return {"what": f"train step, batch {list(images.shape)}",
            "wall_s": statistics.median(times), "peak_gib": peak_memory(device)}


def predictor_for(trainer: str, size: Size, device: torch.device, mirroring: bool = True):
    network, manager, configuration, mirror_axes = model(trainer, size, False)
    predictor_class = nnUNetSlabPredictor if trainer == SLAB_TRAINER else nnUNetPredictor
    predictor = predictor_class(0.5, True, mirroring, True, device, allow_tqdm=False)
    dataset_json = {"channel_names": {"0": "CT"}, "labels": {"background": 0, **{
        f"organ_{i}": i for i in range(1, size.classes)}}, "file_ending": ".mha"}
    predictor.manual_initialization(network.to(device), manager, configuration, None, dataset_json, trainer,
                                    mirror_axes)
    return predictor


def volume(size: Size) -> torch.Tensor:
    return torch.randn(1, size.depth, size.in_plane, size.in_plane)


def prediction_row(trainer: str, size: Size, device: torch.device) -> dict:
    predictor = predictor_for(trainer, size, device)
    image = volume(size)
    reset_peak(device)
    synchronise(device)
    start = time.perf_counter()
    with torch.no_grad():
        logits = predictor.predict_sliding_window_return_logits(image)
    synchronise(device)
    assert logits.shape == (size.classes, size.depth, size.in_plane, size.in_plane)
    return {"what": f"predict {size.in_plane}^2 x {size.depth}, mirroring", "wall_s": time.perf_counter() - start,
            "peak_gib": peak_memory(device)}


def onnxruntime_row(size: Size, device: torch.device) -> dict:
    """The slab model's sliding window on ONNX Runtime (CUDA provider on a GPU, CPU provider in the dry run)."""
    import tempfile

    import onnxruntime

    provider = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    if provider not in onnxruntime.get_available_providers():
        return {"what": "predict on ONNX Runtime", "outcome": f"skipped: no {provider} (pip install onnxruntime-gpu)"}
    from nnunet_25d.deploy.onnx_graph import export_onnx, network_on_slabs
    from nnunet_25d.deploy.predictor import OnnxSession
    from nnunet_25d.deploy.sliding_window import SlabSlidingWindow

    network, _, configuration, _ = model(SLAB_TRAINER, size, False)
    slab_size = network.slab_size
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slab.onnx"
        export_onnx(network_on_slabs(network).eval(), torch.randn(2, 1, slab_size, size.in_plane, size.in_plane), path,
                    exporters=("torchscript", "dynamo"))
        session = OnnxSession(path, [provider])
        window = SlabSlidingWindow(session, size.classes, slab_size, [size.in_plane] * 2, mirror_axes=(1, 2))
        start = time.perf_counter()
        window(volume(size).numpy())
    return {"what": f"predict {size.in_plane}^2 x {size.depth}, mirroring, ONNX Runtime {provider}",
            "wall_s": time.perf_counter() - start, "peak_gib": None}


@contextmanager
def first_attempt_out_of_memory(predictor: nnUNetSlabPredictor) -> Iterator[list[str]]:
    """The predictor's first on-device sliding window raises ``torch.OutOfMemoryError``; yields the devices tried."""
    tried: list[str] = []
    original = predictor._slab_sliding_window

    def failing_once(image: torch.Tensor, results_device: torch.device) -> torch.Tensor:
        tried.append(results_device.type)
        if len(tried) == 1 and results_device.type == "cuda":
            raise torch.OutOfMemoryError("forced by gpu_check")
        return original(image, results_device)

    predictor._slab_sliding_window = failing_once
    try:
        yield tried
    finally:
        predictor._slab_sliding_window = original


def out_of_memory_row(size: Size, device: torch.device) -> dict:
    if device.type != "cuda":
        return {"what": "out-of-memory fallback, forced", "outcome": "skipped: CUDA only (dry run)"}
    predictor = predictor_for(SLAB_TRAINER, size, device, mirroring=False)
    with first_attempt_out_of_memory(predictor) as tried:
        start = time.perf_counter()
        logits = predictor.predict_sliding_window_return_logits(volume(size))
    ok = tried == ["cuda", "cpu"] and logits.device.type == "cpu"
    return {"what": "out-of-memory fallback, forced", "wall_s": time.perf_counter() - start,
            "outcome": f"{'ok' if ok else 'FAILED'}: results on {' then '.join(tried)}"}


def rows(size: Size, device: torch.device) -> Iterator[dict]:
    compile_options = [(False, False), (True, False), (False, True)]
    for trainer in ("nnUNetTrainer", SLAB_TRAINER):
        for channels_last, compiled in compile_options:
            yield labelled(trainer, f"AMP, channels_last {'on' if channels_last else 'off'}, "
                                    f"torch.compile {'on' if compiled else 'off'}",
                           lambda: training_row(trainer, size, device, channels_last, compiled))
        yield labelled(trainer, "AMP", lambda: prediction_row(trainer, size, device))
    yield labelled(SLAB_TRAINER, "float32", lambda: onnxruntime_row(size, device))
    yield labelled(SLAB_TRAINER, "AMP", lambda: out_of_memory_row(size, device))


def labelled(trainer: str, settings: str, measure: Callable[[], dict]) -> dict:
    """One row; a failure is a row too (the table is the report)."""
    try:
        row = measure()
        row.setdefault("outcome", "ok")
    except Exception as error:  # every failure is reported, the next row still runs
        row = {"what": "", "outcome": f"FAILED: {type(error).__name__}: {str(error)[:160]}"}
    print(f"{trainer} | {settings} | {row}", flush=True)
    return {"model": "nnU-Net 2d" if trainer == "nnUNetTrainer" else trainer, "settings": settings, **row}


def table(results: list[dict], device: torch.device, size: Size, dry_run: bool) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    lines = [f"# GPU check: {name}", "",
             f"`bash benchmarks/gpu_check.sh{' --dry-run' if dry_run else ''}`; torch {torch.__version__}; "
             f"{size.in_plane}^2 x {size.depth} slices x {size.classes} classes, features / {size.feature_divisor}.",
             "", "| model | what | settings | wall (s) | peak GPU memory (GiB) | outcome |", "|---|---|---|---|---|---|"]
    for row in results:
        wall = f"{row['wall_s']:.3f}" if row.get("wall_s") is not None else ""
        peak = f"{row['peak_gib']:.2f}" if row.get("peak_gib") is not None else ""
        lines.append(f"| {row['model']} | {row['what']} | {row['settings']} | {wall} | {peak} | {row['outcome']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="on CPU at 64 x 64 x 12, features / 8")
    parser.add_argument("--out", default="benchmarks/results/gpu_check.md")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run with --dry-run to check the script on CPU", file=sys.stderr)
        return 2
    device, size = (torch.device("cpu"), DRY) if args.dry_run else (torch.device("cuda"), FULL)
    results = list(rows(size, device))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table(results, device, size, args.dry_run))
    print(Path(args.out).read_text())
    return 1 if any(row["outcome"].startswith("FAILED") for row in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
