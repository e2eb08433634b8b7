"""The ``nnunet25d`` command."""
from __future__ import annotations

import argparse
import sys

from nnunet_25d import TRAINER_FOLDER


def _env(args: argparse.Namespace) -> None:
    print(f"export nnUNet_extTrainer={TRAINER_FOLDER}")


def _trainers(args: argparse.Namespace) -> None:
    from nnunet_25d.trainers.catalogue import listing

    print(listing(args.pattern))


def _make_dataset(args: argparse.Namespace) -> None:
    if args.kind == "anatomy":
        from nnunet_25d.datasets.anatomy import AnatomySpec, write_anatomy_dataset

        spec = AnatomySpec(in_plane_mm=args.in_plane_mm, slice_thickness_mm=tuple(args.z_spacings) or (4.0,))
        print(write_anatomy_dataset(args.raw, args.dataset_id, n_train=args.n_train, n_test=args.n_test, spec=spec,
                                    seed=args.seed))
        return
    from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset

    spec = SyntheticSpec(shape=tuple(args.shape), objects_per_class=args.objects_per_class,
                         z_spacings=tuple(args.z_spacings))
    try:
        folder = write_dataset(args.raw, args.dataset_id, n_train=args.n_train, n_test=args.n_test, spec=spec,
                               seed=args.seed)
    except ValueError as error:
        raise SystemExit(f"nnunet25d make-dataset: {error}")
    print(folder)


# commands whose parser alone is built when they are called (the other parsers import matplotlib, statsmodels,
# ...: ~4 s of start-up that `nnunet25d predict` would pay on every call, and nnUNetv2_predict does not)
LIGHT_COMMANDS = ("predict", "export", "predict-onnx", "env", "trainers", "make-dataset", "make-roi-dataset",
                  "ensemble-roi")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet25d", description="2.5D segmentation plugins for nnU-Net v2",
                                     epilog="Errors you can fix (a wrong name, a missing dataset, a failed nnU-Net "
                                            "command) are reported in one line; --debug shows the traceback.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of every error")
    sub = parser.add_subparsers(dest="command", required=True)

    env = sub.add_parser("env", help="print the export line that lets nnU-Net find the 2.5D trainers")
    env.set_defaults(func=_env)

    trainers = sub.add_parser("trainers", help="list the plugin's trainers (what, which configuration, which paper) "
                                               "and the name grammar of their variants")
    trainers.add_argument("pattern", nargs="?", help="only trainers whose name contains this (or matches this glob, "
                                                     "e.g. '*Aniso*'), case-insensitive")
    trainers.set_defaults(func=_trainers)

    data = sub.add_parser("make-dataset", help="write the synthetic (or the MNI152 anatomy) anisotropic dataset in "
                                               "nnU-Net raw format")
    data.add_argument("--raw", required=True, help="nnUNet_raw folder")
    data.add_argument("--kind", choices=("synthetic", "anatomy"), default="synthetic",
                      help="synthetic tubes and nodules (default), or anatomy: the MNI152 2009 brain template that "
                           "nilearn ships (pip install \"nnunet_25d[anatomy]\"), deformed, bias field, noise, thick "
                           "slices; grey and white matter labels")
    data.add_argument("--in-plane-mm", type=float, default=2.0, help="anatomy: pixel size in mm (default 2)")
    data.add_argument("-d", "--dataset-id", type=int, default=525)
    data.add_argument("--n-train", type=int, default=10)
    data.add_argument("--n-test", type=int, default=4)
    data.add_argument("--shape", type=int, nargs=3, default=(20, 64, 64), metavar=("Z", "Y", "X"))
    data.add_argument("--objects-per-class", type=int, default=4, help="tubes and nodules per case (each)")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--z-spacings", type=float, nargs="+", default=[], metavar="MM",
                      help="mixed slice thickness: case i gets the i-th spacing (cyclically), e.g. 2 5; synthetic: the "
                           "field of view and the objects' extents in mm stay those of --shape at 4 mm; anatomy: "
                           "the slice thickness (default 4)")
    data.set_defaults(func=_make_dataset)
    from nnunet_25d.roi.command import add_parser as add_roi_parser

    add_roi_parser(sub)

    from nnunet_25d.predict.command import add_parser as add_predict_parser

    add_predict_parser(sub)
    from nnunet_25d.export.command import add_parser as add_export_parser

    add_export_parser(sub)
    from nnunet_25d.deploy.command import add_parser as add_predict_onnx_parser

    add_predict_onnx_parser(sub)
    if only not in LIGHT_COMMANDS:
        add_heavy_parsers(sub)
    for command in sub.choices.values():  # `nnunet25d demo --debug` works as well as `nnunet25d --debug demo`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the full traceback of every error")
    return parser


def add_heavy_parsers(sub) -> None:
    from nnunet_25d.benchmark.demo import add_demo_parser

    add_demo_parser(sub)
    from nnunet_25d.benchmark.command import add_benchmark_parser

    add_benchmark_parser(sub)
    from nnunet_25d.view_fusion.ensemble_cv import add_parser as add_ensemble_cv_parser

    add_ensemble_cv_parser(sub)
    from nnunet_25d.view_fusion.command import add_parsers as add_view_fusion_parsers

    add_view_fusion_parsers(sub)


def called_command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def error_line(error: BaseException) -> str:
    """One line for a user error: the message, prefixed with the exception's kind where that says something."""
    from nnunet_25d.errors import UserError

    summary = getattr(error, "summary", None)  # a failed nnU-Net command (runner.CommandFailed): its log's gist
    if isinstance(summary, str):
        return summary
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and not isinstance(error, UserError):
        return f"{type(error).__name__}: {message}"
    return message


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(called_command(argv)).parse_args(argv)
    if args.debug:
        args.func(args)
        return
    from nnunet_25d.errors import user_error_types

    try:
        args.func(args)
    except user_error_types() as error:
        print(f"nnunet25d {args.command}: error: {error_line(error)} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(1)
    except KeyboardInterrupt:
        print(f"nnunet25d {args.command}: interrupted", file=sys.stderr)
        raise SystemExit(130)


if __name__ == "__main__":
    main(sys.argv[1:])
