"""Issue #2's numbers in one run: nnU-Net's 2d against nnUNetTrainer25D with 3, 5 and 7 slices.

Same data, same schedule, same machine, run one after the other: Dice per class on the synthetic test set,
seconds per training epoch, inference seconds per case (nnUNetv2_predict, start-up subtracted) and the ratios
to nnU-Net's 2d.

    python benchmarks/slab_vs_2d.py --workdir bench_slab --schedule 10x50
"""
from __future__ import annotations

import argparse
import time

from nnunet_25d.benchmark.comparison import ModelSpec
from nnunet_25d.benchmark.demo import add_comparison_arguments, compare
from nnunet_25d.trainers.variants import schedule_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_comparison_arguments(parser)
    parser.add_argument("--slabs", type=int, nargs="+", default=[3, 5, 7], choices=[3, 5, 7])
    args = parser.parse_args()
    epochs, iterations = args.schedule
    specs = [ModelSpec("nnU-Net 2d", schedule_name("nnUNetTrainer", epochs, iterations), "2d", epochs)]
    specs += [ModelSpec(f"2.5D, {s} slices", schedule_name(f"nnUNetTrainer25D_{s}slices", epochs, iterations), "2d",
                        epochs) for s in args.slabs]
    started = time.perf_counter()
    compare(args, specs, f"2d vs slab input, {epochs} epochs x {iterations} iterations")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
