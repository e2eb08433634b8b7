"""Issue #3's numbers in one run: nnU-Net 2d and 3d_fullres against the slab, fusion and anisotropy-aware models.

Same data, same schedule, one machine, one after the other: Dice per class on the synthetic test set, seconds per
epoch, inference seconds per case, parameters. nnUNetTrainer25DAniso runs twice: on a thin slab of the 2d plan
(`2d`) and on nnU-Net's 3d_fullres patch (`3d_fullres`).

    python benchmarks/aniso_fusion.py --workdir bench_aniso --schedule 10x25
"""
from __future__ import annotations

import argparse
import time

from nnunet_25d.comparison import ModelSpec
from nnunet_25d.demo import add_comparison_arguments, compare
from nnunet_25d.training.variants import schedule_name

MODELS = (
    ("nnU-Net 2d", "nnUNetTrainer", "2d"),
    ("nnU-Net 3d_fullres", "nnUNetTrainer", "3d_fullres"),
    ("2.5D slab, 3 slices", "nnUNetTrainer25D", "2d"),
    ("2.5D fusion, 3 slices", "nnUNetTrainer25DFusion", "2d"),
    ("Aniso, thin slab", "nnUNetTrainer25DAniso", "2d"),
    ("Aniso, 3d_fullres patch", "nnUNetTrainer25DAniso", "3d_fullres"),
)
ABLATIONS = (
    ("Aniso, no attention, 3d_fullres", "nnUNetTrainer25DAniso_NoAttention", "3d_fullres"),
    ("Aniso + hardness Dice, 3d_fullres", "nnUNetTrainer25DAniso_HardnessDice", "3d_fullres"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_comparison_arguments(parser)
    parser.add_argument("--with-ablations", action="store_true",
                        help="also train the attention and hardness-loss ablations on 3d_fullres")
    args = parser.parse_args()
    epochs, iterations = args.schedule
    specs = [ModelSpec(label, schedule_name(trainer, epochs, iterations), configuration, epochs)
             for label, trainer, configuration in MODELS + (ABLATIONS if args.with_ablations else ())]
    started = time.perf_counter()
    compare(args, specs, f"2d / 3d_fullres / 2.5D variants, {epochs} epochs x {iterations} iterations")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
