"""``python -m nnunet_25d.benchmark.find_best DATASET --models TRAINER:CONFIG ... --folds ...``

nnU-Net's ``find_best_configuration`` (best single model or two-model ensemble, then postprocessing) over exactly
the given (trainer, configuration) pairs. The ``nnUNetv2_find_best_configuration`` command takes every
combination of its ``-c`` and ``-tr`` lists and fails when one was not trained; a benchmark matrix is not a full
cross product, so this calls the same function with the pairs themselves. Run it as a subprocess: nnU-Net reads
its folder variables when first imported.
"""
from __future__ import annotations

import argparse

from nnunet_25d.benchmark.matrix import parse_model_pair


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--models", nargs="+", required=True, help="TRAINER:CONFIGURATION pairs")
    parser.add_argument("--plans", default="nnUNetPlans")
    parser.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("-np", "--num-processes", type=int, default=1)
    parser.add_argument("--no-ensembling", action="store_true")
    args = parser.parse_args(argv)
    from nnunetv2.evaluation.find_best_configuration import find_best_configuration

    models = []
    for pair in args.models:
        trainer, configuration = parse_model_pair(pair)
        models.append({"plans": args.plans, "configuration": configuration, "trainer": trainer})
    find_best_configuration(args.dataset, models, allow_ensembling=not args.no_ensembling,
                            num_processes=args.num_processes, overwrite=True, folds=tuple(args.folds))


if __name__ == "__main__":
    main()
