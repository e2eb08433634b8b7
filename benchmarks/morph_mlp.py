"""MorphMLP benchmarks: the training comparison of issue #4 and the cost tables of issue #12.

Training (the default command): same data, same schedule, one machine, one after the other: nnUNetTrainer25D
(3 slices, nnU-Net's planned 2D U-Net), nnUNetTrainer25DMorphMLP_N (nano MorphMLP, AdamW + warm-up + cosine) and
the same with nnU-Net's SGD (optimiser ablation), or the ``--trainers`` given. Reports Dice per class on the
synthetic test set, s/epoch, s/case, parameters, and FLOPs per slab (one predicted slice) of every model, plus those
of the untrained T and S sizes on the same patch. ``--size H W`` generates the synthetic dataset at that in-plane
size (default 64 x 64), so that nnU-Net plans a patch of about that size.

    python benchmarks/morph_mlp.py --workdir bench_morph --schedule 10x50
    python benchmarks/morph_mlp.py --workdir bench_morph_192 --size 192 160 --trainers nnUNetTrainer25DMorphMLP_N

``flops``: FLOPs per slab and parameters of MorphMLPSlabUNet T/S/N at given in-plane patches (torch's
FlopCounterMode on the meta device: nothing is computed), and the chunk lengths per stage before (the function of
an earlier commit, read with git) and after, over a table of patches of real nnU-Net 2d plans. Writes Markdown.

    python benchmarks/morph_mlp.py flops --output benchmarks/results/morph_mlp_flops.md
"""
from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
import typing
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import SimpleITK as sitk
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch.utils.flop_counter import FlopCounterMode

from nnunet_25d.architectures.blocks.morph_mlp_chunks import chunk_lengths_for
from nnunet_25d.architectures.morph_mlp_unet import MORPH_MLP_SIZES, MorphMLPSlabUNet
from nnunet_25d.benchmark.comparison import ModelSpec
from nnunet_25d.benchmark.demo import DEMO_DATASET_ID, add_comparison_arguments, compare
from nnunet_25d.errors import UserError
from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset
from nnunet_25d.trainers.morph_mlp_trainer import derive_morph_mlp_plans
from nnunet_25d.trainers.variants import schedule_name

MODELS = {
    "nnUNetTrainer25D": "2.5D conv slab, 3 slices",
    "nnUNetTrainer25DMorphMLP_N": "MorphMLP-N, AdamW",
    "nnUNetTrainer25DMorphMLP_N_SGD": "MorphMLP-N, SGD",
}
# in-plane patches of real nnU-Net 2d plans (CT and MRI datasets), all multiples of 32
PLANNED_PATCHES = ((512, 512), (448, 384), (320, 256), (256, 256), (192, 160), (160, 128), (96, 96), (64, 64))
FLOPS_PATCHES = ((448, 384), (192, 160))
BEFORE_COMMIT = "c37b891"  # the last commit with one chunk length per stage dividing grid and channels
CONV_FEATURES = (32, 64)  # nnU-Net's 2d plans start with 32, 64 features; the MorphMLP trainer takes those


# ---------------------------------------------------------------- training


def flops_and_parameters(plans: dict, dataset_json: dict, configuration: str = "2d") -> tuple[float, int]:
    """(GFLOPs per predicted slice, parameters) of the network these plans build, at their patch size."""
    plans_manager = PlansManager(plans)
    manager = plans_manager.get_configuration(configuration)
    n_classes = len([v for v in dataset_json["labels"].values() if isinstance(v, int)])
    network = nnUNetTrainer.build_network_architecture(
        plans_manager, manager, len(dataset_json["channel_names"]), n_classes, False).eval()
    depth = manager.patch_size[0]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(torch.zeros(1, len(dataset_json["channel_names"]), *manager.patch_size))
    return counter.get_total_flops() / depth / 1e9, sum(p.numel() for p in network.parameters())


def cost_table(results_dir: Path, preprocessed_dir: Path, trainers: list[str]) -> str:
    lines = ["| model | GFLOPs per slab | params (M) |", "|---|---|---|"]
    for trainer in trainers:
        folder = results_dir / f"{trainer}__nnUNetPlans__2d"
        plans = json.loads((folder / "plans.json").read_text())
        gflops, params = flops_and_parameters(plans, json.loads((folder / "dataset.json").read_text()))
        lines.append(f"| `{trainer}` | {gflops:.3f} | {params / 1e6:.2f} |")
    plans = json.loads((preprocessed_dir / "nnUNetPlans.json").read_text())
    dataset_json = json.loads((preprocessed_dir / "dataset.json").read_text())
    for size in ("T", "S"):
        gflops, params = flops_and_parameters(derive_morph_mlp_plans(plans, "2d", 3, size), dataset_json)
        lines.append(f"| MorphMLP-{size} (untrained, same patch) | {gflops:.3f} | {params / 1e6:.2f} |")
    return "\n".join(lines)


def write_synthetic_dataset(args: argparse.Namespace) -> None:
    """The synthetic dataset at ``--size`` in the work folder (the demo writes its default size otherwise); a work
    folder that already holds it at another size is refused."""
    if args.dataset is not None or args.size is None:
        return
    raw = Path(args.workdir).resolve() / "nnUNet_raw"
    existing = sorted(raw.glob(f"Dataset{DEMO_DATASET_ID:03d}_*/imagesTr/*.nii.gz"))
    if existing:
        size_xy = sitk.ReadImage(str(existing[0])).GetSize()[:2]
        if tuple(reversed(size_xy)) != tuple(args.size):
            raise UserError(f"{args.workdir} holds the synthetic dataset at {size_xy[1]}x{size_xy[0]}, not "
                            f"{args.size[0]}x{args.size[1]}: choose another --workdir for --size")
        return
    spec = SyntheticSpec()
    write_dataset(raw, DEMO_DATASET_ID, seed=args.seed, spec=replace(spec, shape=(spec.shape[0], *args.size)))


def train(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_comparison_arguments(parser)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="in-plane size of the synthetic dataset (default 64 64; not with -d)")
    parser.add_argument("--trainers", nargs="+", default=list(MODELS), metavar="TRAINER",
                        help=f"trainers to compare (default: {' '.join(MODELS)})")
    args = parser.parse_args(argv)
    if args.size is not None and (args.dataset is not None or min(args.size) < 32):
        parser.error("--size: two in-plane sizes of at least 32, for the synthetic dataset (not with -d)")
    epochs, iterations = args.schedule
    specs = [ModelSpec(MODELS.get(trainer, trainer), schedule_name(trainer, epochs, iterations), "2d", epochs)
             for trainer in args.trainers]
    started = time.perf_counter()
    write_synthetic_dataset(args)
    size = "" if args.size is None else f", {args.size[0]}x{args.size[1]} synthetic slices"
    compare(args, specs, f"conv slab vs MorphMLP slab encoder, {epochs} epochs x {iterations} iterations{size}")
    work = Path(args.workdir).resolve()
    dataset = next((work / "nnUNet_results").glob("Dataset*")) if args.dataset is None else None
    if dataset is not None:
        table = cost_table(dataset, work / "nnUNet_preprocessed" / dataset.name, [s.trainer for s in specs])
        print("\n" + table)
        (work / "report" / "flops.md").write_text(table + "\n")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s")


# ---------------------------------------------------------------- FLOPs and chunk lengths


def slab_costs(size: str, patch: Sequence[int], chunk_lengths: Sequence, slab_size: int = 3,
               n_classes: int = 3) -> dict[str, float]:
    """GFLOPs of one slab (one predicted slice) through MorphMLPSlabUNet of ``size`` at ``patch``: in total, in the
    MorphMLP stages, in their H and W chunk mixing, in the slice mixing's projections; parameters (M) in total and
    in those projections. Meta tensors: shapes only."""
    with torch.device("meta"):
        network = MorphMLPSlabUNet(1, n_classes, slab_size, MORPH_MLP_SIZES[size]["depths"],
                                   MORPH_MLP_SIZES[size]["dims"], chunk_lengths, CONV_FEATURES).eval()
        slab = torch.zeros(1, 1, slab_size, *patch)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(slab)
    per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}

    def gflops(selected: Callable[[str], bool]) -> float:
        return sum(f for name, f in per_module.items() if selected(name)) / 1e9

    stages = {f"MorphMLPSlabUNet.encoder.stages.{i}" for i in range(len(network.encoder.stages))}
    return {
        "total": counter.get_total_flops() / 1e9,
        "stages": gflops(lambda name: name in stages),
        "chunks": gflops(lambda name: name.endswith(("fc_s.mix_h", "fc_s.mix_w"))),
        "projection": gflops(lambda name: name.endswith("fc_t.proj")),
        "params": sum(p.numel() for p in network.parameters()) / 1e6,
        "projection_params": sum(p.numel() for name, p in network.named_parameters() if ".fc_t.proj." in name) / 1e6,
    }


def chunk_lengths_at(commit: str) -> Callable[[Sequence[int], Sequence[int]], list] | None:
    """``chunk_lengths_for`` as the MorphMLP U-Net module of ``commit`` defined it (read with git; None without
    git or that commit)."""
    path = "nnunet_25d/architectures/morph_mlp_unet.py"
    try:
        source = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).resolve().parent).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    function = next(node for node in ast.parse(source).body
                    if isinstance(node, ast.FunctionDef) and node.name == "chunk_lengths_for")
    namespace = {"PATCH_EMBED_STRIDE": 4, "ChunkSizeError": ValueError, "Sequence": typing.Sequence}
    exec(compile(ast.Module([function], type_ignores=[]), f"{commit}:{path}", "exec"), namespace)
    return namespace["chunk_lengths_for"]


def flops_table(patches: Sequence[Sequence[int]], before: Callable | None, slab_size: int) -> str:
    lines = [f"FLOPs per slab ({slab_size} slices in, the centre slice's logits out; conv levels {CONV_FEATURES}, "
             "U-Net decoder, 3 classes) counted by `torch.utils.flop_counter.FlopCounterMode` (one multiply-add = 2 "
             "FLOPs). Before: the same network with the old chunk lengths, less the FC_t projection it did not have "
             "(the old per-slice branch pooling differs by a few small MLP calls).", "",
             "| size | patch | GFLOPs per slab | MorphMLP stages | H+W chunk mixing | FC_t projection | params (M) |"
             " before: GFLOPs / params (M) |",
             "|---|---|---|---|---|---|---|---|"]
    for size in ("N", "T", "S"):
        dims = MORPH_MLP_SIZES[size]["dims"]
        for patch in patches:
            new = slab_costs(size, patch, chunk_lengths_for(patch, dims), slab_size)
            old = "n/a"
            if before is not None:
                costs = slab_costs(size, patch, before(patch, dims), slab_size)
                old = f"{costs['total'] - costs['projection']:.2f} / {costs['params'] - costs['projection_params']:.2f}"
            lines.append(f"| {size} | {patch[0]}x{patch[1]} | {new['total']:.2f} | {new['stages']:.2f} | "
                         f"{new['chunks']:.2f} | {new['projection']:.2f} | {new['params']:.2f} | {old} |")
    return "\n".join(lines)


def chunk_table(patches: Sequence[Sequence[int]], before: Callable | None, commit: str) -> str:
    lines = ["Chunk lengths per MorphMLP stage (strides 4, 8, 16, 32). Before: one L per stage for both branches "
             f"(`chunk_lengths_for` of commit {commit}), dividing the grid and the stage's channels. After: "
             "[L_H, L_W] per stage, the same for every size (any L fits any channel count).", "",
             "| patch | token grids | before N | before T | before S | after (N, T, S) |", "|---|---|---|---|---|---|"]
    for patch in patches:
        grids = " ".join(f"{patch[0] // s}x{patch[1] // s}" for s in (4, 8, 16, 32))
        old = [("n/a" if before is None else str(before(patch, MORPH_MLP_SIZES[size]["dims"])))
               for size in ("N", "T", "S")]
        after = chunk_lengths_for(patch, MORPH_MLP_SIZES["T"]["dims"])
        lines.append(f"| {patch[0]}x{patch[1]} | {grids} | {' | '.join(old)} | {after} |")
    return "\n".join(lines)


def parse_patch(text: str) -> tuple[int, int]:
    try:
        h, w = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"patch {text!r}: give HxW, e.g. 448x384") from None
    return h, w


def flops(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="morph_mlp.py flops", description="FLOPs per slab, parameters and chunk "
                                     "lengths of MorphMLP T/S/N (no training).")
    parser.add_argument("--patches", type=parse_patch, nargs="+", default=list(FLOPS_PATCHES), metavar="HxW",
                        help="in-plane patches for FLOPs and parameters (default 448x384 192x160)")
    parser.add_argument("--chunk-patches", type=parse_patch, nargs="+", default=list(PLANNED_PATCHES),
                        metavar="HxW", help="patches for the chunk-length table (default: real nnU-Net 2d plans)")
    parser.add_argument("--slab-size", type=int, default=3)
    parser.add_argument("--before-commit", default=BEFORE_COMMIT,
                        help=f"git revision whose chunk_lengths_for is 'before' (default {BEFORE_COMMIT})")
    parser.add_argument("--output", type=Path, default=None, help="Markdown file to write (default: print only)")
    args = parser.parse_args(argv)
    before = chunk_lengths_at(args.before_commit)
    markdown = "\n\n".join([
        "# MorphMLP: FLOPs, parameters and chunk lengths",
        f"`python benchmarks/morph_mlp.py flops` (torch {torch.__version__}).",
        flops_table(args.patches, before, args.slab_size),
        chunk_table(args.chunk_patches, before, args.before_commit),
    ]) + "\n"
    print(markdown)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown)


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["flops"]:
        flops(argv[1:])
    else:
        train(argv)


if __name__ == "__main__":
    main()
