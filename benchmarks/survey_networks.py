"""Cost of the survey networks: parameters and FLOPs per predicted slice of RIU-Net (the authors' network and the
factorised ablation), Ψ-Net and MorphMLP-T (reference patch embedding and last stage, and the linear-patch
ablation) against the planned U-Net of ``nnUNetTrainer25D_3slices``, on nnU-Net's 2d plans for CT at 64², 192², 512²
in-plane (full feature counts, 32..512) with a 3-slice slab.

FLOPs from ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add = 2 FLOPs) on meta tensors: shapes
only, nothing is computed, so the numbers do not depend on the machine or on what else runs.

    python benchmarks/survey_networks.py --out benchmarks/results/survey_networks.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from clinical_scale import plans_for
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch.utils.flop_counter import FlopCounterMode

from nnunet_25d.trainers.registry import TRAINERS

TRAINER_NAMES = ("nnUNetTrainer25D_3slices", "nnUNetTrainer25DRIUNet", "nnUNetTrainer25DRIUNet_Factorised",
                 "nnUNetTrainer25DPsiNet", "nnUNetTrainer25DMorphMLP", "nnUNetTrainer25DMorphMLP_LinearPatches")
IN_PLANE = (64, 192, 512)
CLASSES = 8


def cost(trainer: str, in_plane: int) -> tuple[float, int]:
    """(GFLOPs per predicted slice, parameters) of ``trainer``'s network on the 2d plan at ``in_plane``²."""
    trainer_class = TRAINERS[trainer]
    plans = trainer_class.derive_plans(plans_for(in_plane, 1, 200), "2d")
    manager = PlansManager(plans)
    network = trainer_class.build_network_architecture(manager, manager.get_configuration("2d"), 1, CLASSES, False)
    parameters = sum(p.numel() for p in network.parameters())
    network = network.to("meta").eval()
    network.interior_only = True  # a 3-slice patch: one slice computed from its slab
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(torch.zeros(1, 1, network.slab_size, in_plane, in_plane, device="meta"))
    return counter.get_total_flops() / 1e9, parameters


def table() -> str:
    lines = ["| in-plane | model | params (M) | vs U-Net | GFLOPs per slice | vs U-Net |", "|---|---|---|---|---|---|"]
    for in_plane in IN_PLANE:
        reference = None
        for trainer in TRAINER_NAMES:
            gflops, parameters = cost(trainer, in_plane)
            reference = reference or (gflops, parameters)
            lines.append(f"| {in_plane}² | `{trainer}` | {parameters / 1e6:.2f} | {parameters / reference[1]:.2f}x | "
                         f"{gflops:.2f} | {gflops / reference[0]:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = (f"# Survey networks: parameters and FLOPs\n\n`python benchmarks/survey_networks.py` (torch "
            f"{torch.__version__}). nnU-Net's 2d plan for CT (stages down to 4 x 4, features 32..512), slab of 3, "
            f"{CLASSES} classes; FLOPs per predicted slice (FlopCounterMode on meta tensors, multiply-add = 2).\n\n"
            f"{table()}\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
