"""Issue #10's numbers: what exact slab context costs, and what it gives.

``costs`` (no training, about a minute): per training step of nnU-Net's 2d and of the slab trainers (2d batches 2,
12 and 40; slabs of 3, 5 and 7 slices), before (every slice of a thin patch computed and supervised) and now
(only slices whose slab lies in the patch): patches, supervised slices, 2D forward passes, activation memory
(bytes autograd saves for the backward pass) and the share of supervised slices from patches nnU-Net forces to
foreground. Then inference: 2D passes and seconds per volume through nnU-Net's predictor (test-time mirroring on)
for several depths, slab model vs the same 2D network as nnU-Net's 2d, and the old 4k-deep tiles' passes.

``train``: the synthetic dataset's Dice per class, s/epoch and s/case of nnU-Net 2d and 3d_fullres and the slab
trainers on one schedule (``--mixed-thickness``: on a dataset whose cases have 2 mm or 5 mm slices, comparing the
slab model on the 2d data (each case's own slices) with the same model on z-resampled data).

    python benchmarks/slab_context.py costs
    python benchmarks/slab_context.py train --workdir bench_context --schedule 10x50
    python benchmarks/slab_context.py train --workdir bench_mixed --schedule 10x50 --mixed-thickness
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_25d.architectures.slab_network import SlabNetwork
from nnunet_25d.benchmark.comparison import ModelSpec
from nnunet_25d.benchmark.demo import add_comparison_arguments, compare
from nnunet_25d.planning.inference_depth import inference_depth
from nnunet_25d.geometry.slab import SlabBatch, forced_foreground_patches, slab_batch
from nnunet_25d.trainers.variants import schedule_name

IN_PLANE = (64, 64)  # the synthetic dataset's 2d patch
UNET = dict(n_stages=5, features_per_stage=[32, 64, 128, 256, 320], conv_op=nn.Conv2d, kernel_sizes=[[3, 3]] * 5,
            strides=[[1, 1]] + [[2, 2]] * 4, n_conv_per_stage=[2] * 5, n_conv_per_stage_decoder=[2] * 4,
            conv_bias=True, norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
            nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})
MODELS = (
    ("nnU-Net 2d", "nnUNetTrainer", "2d"),
    ("nnU-Net 3d_fullres", "nnUNetTrainer", "3d_fullres"),
    ("2.5D slab, 3 slices", "nnUNetTrainer25D", "2d"),
    ("2.5D slab, 5 slices", "nnUNetTrainer25D_5slices", "2d"),
    ("2.5D fusion, 3 slices", "nnUNetTrainer25DFusion", "2d"),
    ("MorphMLP-N, 3 slices", "nnUNetTrainer25DMorphMLP_N", "2d"),
)
MIXED_MODELS = (  # 3d_fullres is the first table's reference (96 s/epoch here: left out to keep the run short)
    ("nnU-Net 2d", "nnUNetTrainer", "2d"),
    ("2.5D slab on 2d data (own z spacing)", "nnUNetTrainer25D", "2d"),
    ("2.5D slab on z-resampled data", "nnUNetTrainer25DResampled", "2d"),
)


def old_batch(batch_2d: int, slab_size: int, median_depth: int) -> SlabBatch:
    """The previous design: a thin patch of >= 4k slices, every slice computed and supervised."""
    k = slab_size // 2
    depth = max(max(slab_size, 4 * k), min(math.ceil(batch_2d / 2), median_depth))
    return SlabBatch(max(1, round(batch_2d / depth)), depth, 1)


def activation_bytes(step) -> int:
    """Bytes autograd keeps for the backward pass of ``step()`` (a forward pass and its loss)."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return total


def slab_network(slab_size: int, interior_only: bool, slices_per_forward: int | None = None) -> SlabNetwork:
    network = SlabNetwork(1, 3, slab_size, slices_per_forward=slices_per_forward, **UNET)
    network.interior_only = interior_only
    return network


def step_row(name: str, network: nn.Module, batch: torch.Tensor, forced: int, patches: int) -> str:
    passes = []
    inner = network.network_2d if isinstance(network, SlabNetwork) else network
    hook = inner.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
    memory = activation_bytes(lambda: network(batch).square().mean())
    hook.remove()
    supervised = passes[0]
    return (f"| {name} | {patches} | {tuple(batch.shape[2:-2]) or '-'} | {supervised} | {passes[0]} | "
            f"{memory / 2 ** 20:.0f} | {forced / patches:.2f} |")


def training_costs(median_depth: int = 20) -> str:
    lines = ["| step | patches | patch depth | supervised slices | 2D passes | activation MiB | forced-fg share |",
             "|---|---|---|---|---|---|---|"]
    torch.manual_seed(0)
    for batch_2d in (2, 12, 40):
        lines.append(step_row(f"nnU-Net 2d, batch {batch_2d}", PlainConvUNet(1, num_classes=3, **UNET),
                              torch.randn(batch_2d, 1, *IN_PLANE), forced_foreground_patches(batch_2d), batch_2d))
        for slab_size in (3, 5, 7):
            new = slab_batch(batch_2d, slab_size, median_depth)
            old = old_batch(batch_2d, slab_size, median_depth)
            for label, batch, interior in (("before", old, False), ("now", new, True)):
                depth = batch.supervised_slices if label == "before" else batch.patch_depth
                lines.append(step_row(
                    f"{slab_size} slices, {label}", slab_network(slab_size, interior),
                    torch.randn(batch.patches, 1, depth, *IN_PLANE), forced_foreground_patches(batch.patches),
                    batch.patches))
    return "\n".join(lines)


def predictor_for(network: nn.Module, patch: list[int]) -> nnUNetPredictor:
    """nnU-Net's predictor around ``network``, mirroring the two in-plane axes (the last two of ``patch``)."""
    configuration = ConfigurationManager({"patch_size": patch, "spacing": [4.0, 0.8, 0.8], "architecture": {
        "network_class_name": "unused", "arch_kwargs": {}, "_kw_requires_import": []}})
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    plans = PlansManager({"dataset_name": "Dataset000_Bench", "plans_name": "bench", "configurations": {},
                          "label_manager": "LabelManager"})
    predictor.manual_initialization(network.eval(), plans, configuration, None,
                                    {"labels": {"background": 0, "a": 1, "b": 2}}, "bench",
                                    (len(patch) - 2, len(patch) - 1))
    return predictor


def timed_passes(predictor: nnUNetPredictor, counted: nn.Module, volume: torch.Tensor) -> tuple[int, float]:
    passes = []
    hook = counted.register_forward_pre_hook(lambda module, args: passes.append(args[0].shape[0]))
    started = time.perf_counter()
    predictor.predict_sliding_window_return_logits(volume)
    seconds = time.perf_counter() - started
    hook.remove()
    return sum(passes), seconds


def inference_costs(slab_size: int = 3, median_depth: int = 20) -> str:
    torch.manual_seed(0)
    depth = inference_depth(median_depth)
    slab = slab_network(slab_size, interior_only=False, slices_per_forward=slab_batch(12, slab_size, 20).slices_per_step)
    plain = PlainConvUNet(1, num_classes=3, **UNET)
    slab_predictor = predictor_for(slab, [depth, *IN_PLANE])
    plain_predictor = predictor_for(plain, [*IN_PLANE])
    old_depth = max(slab_size, 4 * (slab_size // 2))
    lines = [f"Slab {slab_size}, inference patch {depth} x {IN_PLANE}, 4 mirrorings, nnU-Net's predictor on CPU:", "",
             "| volume depth | 2d passes | slab passes | ratio | old 4k tiles' passes | 2d s | slab s | time ratio |",
             "|---|---|---|---|---|---|---|---|"]
    with torch.no_grad():
        for volume_depth in (1, 5, 20, 40, 100, 200):
            volume = torch.randn(1, volume_depth, *IN_PLANE)
            plain_passes, plain_seconds = timed_passes(plain_predictor, plain, volume)
            slab_passes, slab_seconds = timed_passes(slab_predictor, slab.network_2d, volume)
            tiles = len(compute_steps_for_sliding_window((max(volume_depth, old_depth),), (old_depth,), 0.5)[0])
            lines.append(f"| {volume_depth} | {plain_passes} | {slab_passes} | {slab_passes / plain_passes:.2f} | "
                         f"{tiles * old_depth * 4} | {plain_seconds:.2f} | {slab_seconds:.2f} | "
                         f"{slab_seconds / plain_seconds:.2f} |")
    return "\n".join(lines)


def costs(args: argparse.Namespace) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    if not args.inference_only:
        print(training_costs() + "\n")
    print(inference_costs())


def train(args: argparse.Namespace) -> None:
    epochs, iterations = args.schedule
    models = MIXED_MODELS if args.mixed_thickness else MODELS
    specs = [ModelSpec(label, schedule_name(trainer, epochs, iterations), configuration, epochs)
             for label, trainer, configuration in models]
    if args.mixed_thickness:
        args.z_spacings = (2.0, 5.0)
    started = time.perf_counter()
    compare(args, specs, f"exact slab context{', mixed slice thickness' if args.mixed_thickness else ''}, "
                         f"{epochs} epochs x {iterations} iterations")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cost = sub.add_parser("costs", help="per-step and per-volume costs, no training")
    cost.add_argument("--inference-only", action="store_true")
    cost.set_defaults(func=costs)
    training = sub.add_parser("train", help="train and test the models on the synthetic data")
    add_comparison_arguments(training)
    training.add_argument("--mixed-thickness", action="store_true",
                          help="cases with 2 mm or 5 mm slices; 2d data vs z-resampled data for the slab model")
    training.set_defaults(func=train)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
