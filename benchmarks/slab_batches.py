"""Issue 21, deliverable 1: how a slab training step's batch is built, against nnU-Net 2d's, from the real loaders.

For nnU-Net's 2d trainer and the slab trainer with n supervised slices per patch (1, 2, 4, ... and the earlier
"deep" design: the fewest, deepest patches), on one preprocessed dataset, in this process (augmentation in the
main thread, ``nnUNet_n_proc_DA=0``, so loading and network compete for nothing but their own cores):

- independent draws per step (patches: each is one random (case, position)), supervised slices, 2D passes;
- the share of supervised slices that hold foreground, and of those nnU-Net's loader forced to foreground;
- seconds per step for loading + augmentation, for the network step (forward, backward, SGD), and their sum,
  each as a ratio to nnU-Net 2d's (median of ``--steps`` steps after ``--warmup``).

    python benchmarks/slab_batches.py -d 534 --steps 20 --out benchmarks/results/slab_batches_534.md

Run it alone on the machine: it reports timings.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.planning.configuration import SLAB_KEY
from nnunet_25d.geometry.slab import forced_foreground_patches
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D


def slab_trainer_with(per_patch: int | None) -> type[nnUNetTrainer25D]:
    name = f"SlabTrainer_{per_patch or 'deep'}"
    return type(name, (nnUNetTrainer25D,), {"slab_size": 3, "supervised_per_patch": per_patch})


def build(trainer_class: type[nnUNetTrainer], dataset: str) -> nnUNetTrainer:
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / dataset
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    trainer = trainer_class(plans, "2d", 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    trainer.network.train()
    if isinstance(trainer, nnUNetTrainer25D):
        trainer.network.interior_only = True
    return trainer


def supervised_target(batch: dict) -> torch.Tensor:
    target = batch["target"]
    return target[0] if isinstance(target, list) else target


def measure(trainer: nnUNetTrainer, steps: int, warmup: int) -> dict:
    load, train, fg_share = [], [], []
    for step in range(warmup + steps):
        started = time.perf_counter()
        batch = next(trainer.dataloader_train)
        loaded = time.perf_counter()
        trainer.train_step(batch)
        done = time.perf_counter()
        if step >= warmup:
            load.append(loaded - started)
            train.append(done - loaded)
            target = supervised_target(batch)
            slices = target.reshape(target.shape[0], target.shape[1], -1, *target.shape[-2:]).transpose(1, 2)
            slices = slices.reshape(-1, *target.shape[-2:])
            fg_share.append(float((slices > 0).flatten(1).any(1).float().mean()))
    configuration = trainer.configuration_manager.configuration
    patches = configuration["batch_size"]
    supervised = configuration.get(SLAB_KEY, {}).get("supervised_slices", 1)
    return {
        "patches": patches,
        "supervised_per_patch": supervised,
        "slices": patches * supervised,
        "forced_fg_share": forced_foreground_patches(patches) / patches,
        "fg_share": statistics.mean(fg_share),
        "load_s": statistics.median(load),
        "train_s": statistics.median(train),
        "step_s": statistics.median(np.add(load, train)),
    }


def table(rows: dict[str, dict], dataset: str, steps: int) -> str:
    base = rows["nnU-Net 2d"]
    lines = [f"## {dataset}: one training step from the real loaders ({steps} steps, medians, augmentation in the "
             f"main thread, CPU, {torch.get_num_threads()} threads)", "",
             "| design | independent draws (patches) | supervised slices per patch | 2D passes | forced-foreground "
             "share of supervised slices | supervised slices holding foreground | load + augment (s) | network "
             "step (s) | step (s) | load vs 2d | step vs 2d |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['patches']} | {row['supervised_per_patch']} | {row['slices']} | "
                     f"{row['forced_fg_share']:.2f} | {row['fg_share']:.2f} | {row['load_s']:.3f} | "
                     f"{row['train_s']:.3f} | {row['step_s']:.3f} | {row['load_s'] / base['load_s']:.2f}x | "
                     f"{row['step_s'] / base['step_s']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-d", "--dataset", required=True, help="preprocessed dataset name or ID (2d planned)")
    parser.add_argument("--per-patch", type=int, nargs="+", default=[1, 2, 4], help="supervised slices per patch")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ["nnUNet_n_proc_DA"] = "0"
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    dataset = maybe_convert_to_dataset_name(args.dataset)
    designs = {"nnU-Net 2d": nnUNetTrainer}
    designs.update({f"slab 3, {n} supervised per patch": slab_trainer_with(n) for n in args.per_patch})
    designs["slab 3, deep (earlier design)"] = slab_trainer_with(None)
    rows = {}
    for name, trainer_class in designs.items():
        torch.manual_seed(0)
        np.random.seed(0)
        rows[name] = measure(build(trainer_class, dataset), args.steps, args.warmup)
        print(name, rows[name], flush=True)
    text = table(rows, dataset, args.steps)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
