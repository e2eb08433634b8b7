"""Issue #3's numbers in one run: nnU-Net 2d and 3d_fullres against the slab, fusion and anisotropy-aware models.

Same data, same schedule, one machine, one after the other: Dice per class on the synthetic test set, seconds per
epoch, inference seconds per case, parameters. nnUNetTrainer25DAniso runs twice: on a thin slab of the 2d plan
(`2d`) and on nnU-Net's 3d_fullres patch (`3d_fullres`).

    python benchmarks/aniso_fusion.py --workdir bench_aniso --schedule 10x25

`--set attention` (issue 12): only nnU-Net's 3d_fullres against the anisotropy-aware model with and without
attention supervision, all on the 3d_fullres patch and data:

    python benchmarks/aniso_fusion.py --workdir bench_attention --schedule 10x25 --set attention
"""
from __future__ import annotations

import argparse
import time

from nnunet_25d.benchmark.comparison import ModelSpec
from nnunet_25d.benchmark.demo import add_comparison_arguments, compare
from nnunet_25d.trainers.variants import schedule_name

NNUNET_3D = ("nnU-Net 3d_fullres", "nnUNetTrainer", "3d_fullres")
ANISO_3D = ("Aniso (supervised attention), 3d_fullres patch", "nnUNetTrainer25DAniso", "3d_fullres")
UNSUPERVISED_3D = ("Aniso, attention without its loss, 3d_fullres", "nnUNetTrainer25DAniso_NoAttentionLoss",
                   "3d_fullres")
MODEL_SETS = {
    "all": (
        ("nnU-Net 2d", "nnUNetTrainer", "2d"),
        NNUNET_3D,
        ("2.5D slab, 3 slices", "nnUNetTrainer25D", "2d"),
        ("2.5D fusion, 3 slices", "nnUNetTrainer25DFusion", "2d"),
        ("Aniso (supervised attention), thin slab", "nnUNetTrainer25DAniso", "2d"),
        ANISO_3D,
    ),
    "attention": (NNUNET_3D, ANISO_3D, UNSUPERVISED_3D),
}
ABLATIONS = (
    ("Aniso, no attention, 3d_fullres", "nnUNetTrainer25DAniso_NoAttention", "3d_fullres"),
    UNSUPERVISED_3D,
    ("Aniso + hardness Dice (full paper method), 3d_fullres", "nnUNetTrainer25DAniso_HardnessDice", "3d_fullres"),
)


def selected_models(model_set: str, with_ablations: bool) -> list[tuple[str, str, str]]:
    """The set's models, then the ablations it does not hold yet (one run per trainer and configuration)."""
    chosen = list(MODEL_SETS[model_set])
    for model in ABLATIONS if with_ablations else ():
        if all(model[1:] != other[1:] for other in chosen):
            chosen.append(model)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_comparison_arguments(parser)
    parser.add_argument("--set", dest="model_set", choices=sorted(MODEL_SETS), default="all",
                        help="all: 2d, 3d_fullres, slab, fusion, aniso (default); attention: 3d_fullres vs aniso "
                             "with and without attention supervision")
    parser.add_argument("--with-ablations", action="store_true",
                        help="also train the attention, attention-loss and hardness-loss ablations on 3d_fullres")
    args = parser.parse_args()
    epochs, iterations = args.schedule
    specs = [ModelSpec(label, schedule_name(trainer, epochs, iterations), configuration, epochs)
             for label, trainer, configuration in selected_models(args.model_set, args.with_ablations)]
    started = time.perf_counter()
    title = {"all": "2d / 3d_fullres / 2.5D variants", "attention": "3d_fullres vs Aniso with / without attention "
             "supervision"}[args.model_set]
    compare(args, specs, f"{title}, {epochs} epochs x {iterations} iterations")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
