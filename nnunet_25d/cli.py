"""The ``nnunet25d`` command."""
from __future__ import annotations

import argparse
import sys

from nnunet_25d import TRAINER_FOLDER


def _env(args: argparse.Namespace) -> None:
    print(f"export nnUNet_extTrainer={TRAINER_FOLDER}")


def _make_dataset(args: argparse.Namespace) -> None:
    from nnunet_25d.synthetic import SyntheticSpec, write_dataset

    spec = SyntheticSpec(shape=tuple(args.shape), objects_per_class=args.objects_per_class)
    try:
        folder = write_dataset(args.raw, args.dataset_id, n_train=args.n_train, n_test=args.n_test, spec=spec,
                               seed=args.seed)
    except ValueError as error:
        raise SystemExit(f"nnunet25d make-dataset: {error}")
    print(folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet25d", description="2.5D segmentation plugins for nnU-Net v2")
    sub = parser.add_subparsers(dest="command", required=True)

    env = sub.add_parser("env", help="print the export line that lets nnU-Net find the 2.5D trainers")
    env.set_defaults(func=_env)

    data = sub.add_parser("make-dataset", help="write the synthetic anisotropic dataset in nnU-Net raw format")
    data.add_argument("--raw", required=True, help="nnUNet_raw folder")
    data.add_argument("-d", "--dataset-id", type=int, default=525)
    data.add_argument("--n-train", type=int, default=10)
    data.add_argument("--n-test", type=int, default=4)
    data.add_argument("--shape", type=int, nargs=3, default=(20, 64, 64), metavar=("Z", "Y", "X"))
    data.add_argument("--objects-per-class", type=int, default=4, help="tubes and nodules per case (each)")
    data.add_argument("--seed", type=int, default=0)
    data.set_defaults(func=_make_dataset)

    from nnunet_25d.demo import add_demo_parser

    add_demo_parser(sub)
    from nnunet_25d.benchmark.command import add_benchmark_parser

    add_benchmark_parser(sub)
    from nnunet_25d.ensemble_cv import add_parser as add_ensemble_cv_parser

    add_ensemble_cv_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
