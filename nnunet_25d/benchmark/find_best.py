"""``python -m nnunet_25d.benchmark.find_best DATASET --models TRAINER:CONFIG ... --folds ...``

nnU-Net's ``find_best_configuration`` (best single model or two-model ensemble, then postprocessing) over exactly
the given (trainer, configuration) pairs. The ``nnUNetv2_find_best_configuration`` command takes every
combination of its ``-c`` and ``-tr`` lists and fails when one was not trained; a benchmark matrix is not a full
cross product, so this calls the same function with the pairs themselves. Run it as a subprocess: nnU-Net reads
its folder variables when first imported.

nnU-Net writes ``inference_information.json`` and ``inference_instructions.txt`` into
``nnUNet_results/DatasetXXX``, where the user's own find_best result may lie: with ``--output``, the new files are
copied there and the user's are put back as they were (after a run killed half-way, the next call puts a backup
back where nothing replaced the file, and beside the file where something did).
"""
from __future__ import annotations

import argparse
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nnunet_25d.benchmark.matrix import parse_model_pair
from nnunet_25d.inference.model_folder import dataset_name

RESULT_FILES = ("inference_information.json", "inference_instructions.txt")
BACKUP_FOLDER = "users_find_best_backup"


@contextmanager
def users_files_kept(results_folder: Path, output: Path) -> Iterator[None]:
    """Back up the user's find_best files, let nnU-Net write, copy its files to ``output``, restore the user's."""
    backup = output / BACKUP_FOLDER
    keep_both(backup, results_folder)  # from a run that was killed before it could restore
    backup.mkdir(parents=True, exist_ok=True)
    for name in RESULT_FILES:
        if (results_folder / name).is_file():
            shutil.copy2(results_folder / name, backup / name)
    try:
        yield
        for name in RESULT_FILES:
            if (results_folder / name).is_file():
                shutil.copy2(results_folder / name, output / name)
    finally:
        restore(backup, results_folder)


def restore(backup: Path, results_folder: Path) -> None:
    """Put the backed-up files back; where the user had none, nnU-Net's new file stays (as its own command would
    leave it)."""
    if not backup.is_dir():
        return
    for saved in backup.iterdir():
        shutil.copy2(saved, results_folder / saved.name)
        saved.unlink()
    backup.rmdir()


def keep_both(backup: Path, results_folder: Path) -> None:
    """A backup left by a run killed during find_best: put it back where nothing replaced it; where the file has
    changed since (the killed run's output, or the user's own newer find_best: no way to tell), keep that file and
    put the backup beside it, and say so."""
    if not backup.is_dir():
        return
    for saved in backup.iterdir():
        current = results_folder / saved.name
        if current.is_file() and current.read_bytes() != saved.read_bytes():
            aside = current.with_name(f"{saved.name}.before_killed_benchmark")
            shutil.move(saved, aside)
            print(f"a benchmark killed during find_best left a backup of {current}; the file has changed since (that "
                  f"run's output or yours): kept it, and put the backup beside it as {aside}", flush=True)
        else:
            shutil.move(saved, current)
    backup.rmdir()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--models", nargs="+", required=True, help="TRAINER:CONFIGURATION pairs")
    parser.add_argument("--plans", default="nnUNetPlans")
    parser.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("-np", "--num-processes", type=int, default=1)
    parser.add_argument("--no-ensembling", action="store_true")
    parser.add_argument("--output", type=Path, default=None,
                        help="copy nnU-Net's inference_information.json / inference_instructions.txt here and keep "
                             "the ones already in nnUNet_results/DatasetXXX as they were")
    args = parser.parse_args(argv)
    from nnunetv2.evaluation.find_best_configuration import find_best_configuration
    from nnunetv2.paths import nnUNet_results

    models = []
    for pair in args.models:
        trainer, configuration = parse_model_pair(pair)
        models.append({"plans": args.plans, "configuration": configuration, "trainer": trainer})

    def run() -> None:
        find_best_configuration(args.dataset, models, allow_ensembling=not args.no_ensembling,
                                num_processes=args.num_processes, overwrite=True, folds=tuple(args.folds))

    if args.output is None:
        run()
        return
    with users_files_kept(Path(nnUNet_results) / dataset_name(args.dataset), args.output):
        run()


if __name__ == "__main__":
    main()
