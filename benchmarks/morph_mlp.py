"""Issue #4's numbers in one run: MorphMLP slab encoder against the convolutional slab network.

Same data, same schedule, one machine, one after the other: nnUNetTrainer25D (3 slices, nnU-Net's planned 2D
U-Net), nnUNetTrainer25DMorphMLP_N (nano MorphMLP, AdamW + warm-up + cosine) and the same with nnU-Net's SGD
(optimiser ablation). Reports Dice per class on the synthetic test set, s/epoch, s/case, parameters, and FLOPs
per slab (one predicted slice) of every model, plus those of the untrained T and S sizes on the same patch.

    python benchmarks/morph_mlp.py --workdir bench_morph --schedule 10x50
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch.utils.flop_counter import FlopCounterMode

from nnunet_25d.comparison import ModelSpec
from nnunet_25d.training.morph_mlp_trainer import derive_morph_mlp_plans
from nnunet_25d.demo import add_comparison_arguments, compare
from nnunet_25d.training.variants import schedule_name

MODELS = (
    ("2.5D conv slab, 3 slices", "nnUNetTrainer25D"),
    ("MorphMLP-N, AdamW", "nnUNetTrainer25DMorphMLP_N"),
    ("MorphMLP-N, SGD", "nnUNetTrainer25DMorphMLP_N_SGD"),
)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_comparison_arguments(parser)
    args = parser.parse_args()
    epochs, iterations = args.schedule
    specs = [ModelSpec(label, schedule_name(trainer, epochs, iterations), "2d", epochs) for label, trainer in MODELS]
    started = time.perf_counter()
    compare(args, specs, f"conv slab vs MorphMLP slab encoder, {epochs} epochs x {iterations} iterations")
    work = Path(args.workdir).resolve()
    dataset = next((work / "nnUNet_results").glob("Dataset*")) if args.dataset is None else None
    if dataset is not None:
        table = cost_table(dataset, work / "nnUNet_preprocessed" / dataset.name, [s.trainer for s in specs])
        print("\n" + table)
        (work / "report" / "flops.md").write_text(table + "\n")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
