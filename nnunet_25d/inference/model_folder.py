"""A trained model folder named by dataset, trainer, plans and configuration, as nnU-Net names it, checked before
any work: each problem (unknown dataset, misspelled trainer, untrained fold, unreadable checkpoint) in one line
that names the fix."""
from __future__ import annotations

import argparse
import difflib
import os
from pathlib import Path

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.errors import DatasetNotFoundError, TrainerNameError, UserError
from nnunet_25d.inference.checkpoint_file import (is_readable_checkpoint, load_checkpoint_safely,
                                                   unreadable_checkpoint_message)


class ModelFolderError(UserError, FileNotFoundError):
    """A model folder, fold or checkpoint that is missing or unreadable."""


def dataset_name(dataset: str) -> str:
    """nnU-Net's ``DatasetXXX_Name`` for a name or ID; :class:`DatasetNotFoundError` (one line) where nnU-Net knows
    none."""
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw, nnUNet_results
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError):
        roots = {"nnUNet_raw": nnUNet_raw, "nnUNet_preprocessed": nnUNet_preprocessed, "nnUNet_results": nnUNet_results}
        known = sorted({p.name for root in roots.values() if root and Path(root).is_dir()
                        for p in Path(root).glob("Dataset*") if p.is_dir()})
        where = ", ".join(f"{name}={root}" for name, root in roots.items())
        raise DatasetNotFoundError(f"no dataset {dataset!r} in {where}; datasets there: "
                                   f"{', '.join(known) or 'none'}") from None


def model_folder_of(dataset: str, trainer: str, plans: str, configuration: str) -> Path:
    from nnunetv2.paths import nnUNet_results

    if not nnUNet_results:
        raise UserError("nnUNet_results is not set: export it (the folder nnUNetv2_train wrote the model into)")
    return Path(nnUNet_results) / dataset_name(dataset) / f"{trainer}__{plans}__{configuration}"


def trainer_name_problem(trainer: str) -> str | None:
    """What nnU-Net's own trainer lookup says of ``trainer``: None where it finds it, else one sentence (the plugin's
    message, with the closest declared names, for a misspelled plugin name)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        recursive_find_trainer_class_by_name(trainer)
    except TrainerNameError as error:
        return str(error)
    except RuntimeError:
        return f"trainer {trainer!r} is known neither to nnU-Net nor to the plugin (list them: nnunet25d trainers)"
    return None


def trained_models(dataset_results: Path) -> list[str]:
    """The model folders (``TRAINER__PLANS__CONFIGURATION``) under a dataset's results folder."""
    return sorted(p.name for p in dataset_results.glob("*__*__*") if p.is_dir()) if dataset_results.is_dir() else []


def missing_model_message(model_folder: Path, args: argparse.Namespace) -> str:
    trained = trained_models(model_folder.parent)
    close = difflib.get_close_matches(model_folder.name, trained, n=3, cutoff=0.6)
    there = (f"; closest trained: {', '.join(close)}" if close else
             f"; trained for this dataset: {', '.join(trained) or 'none'}")
    problem = trainer_name_problem(args.tr)
    if problem is not None:
        return f"{problem}{there}"
    return (f"no trained model at {model_folder}: train it first (`nnUNetv2_train {args.d} {args.c} FOLD -tr "
            f"{args.tr} -p {args.p}`), or check -d/-tr/-c/-p{there}")


def check_model_folder(model_folder: Path, folds: list[int | str], checkpoint: str, args: argparse.Namespace,
                       unpickle_check: bool = True) -> None:
    """Every requested fold has a readable checkpoint; otherwise one message naming what is there. With
    ``unpickle_check`` also :func:`check_checkpoints_load_safely` (a caller that may not unpickle them at all calls
    it itself before it does)."""
    if not model_folder.is_dir():
        raise ModelFolderError(missing_model_message(model_folder, args))
    trained = sorted(p.parent.name[len("fold_"):] for p in model_folder.glob(f"fold_*/{checkpoint}"))
    missing = [str(f) for f in folds if str(f) not in trained]
    if missing:
        raise ModelFolderError(f"fold(s) {', '.join(missing)} of {model_folder} have no {checkpoint}; trained: "
                               f"{', '.join(trained) or 'none'} (predict with -f {' '.join(trained) or 'FOLD'})")
    for fold in folds:
        path = model_folder / f"fold_{fold}" / checkpoint
        if not is_readable_checkpoint(path):
            raise ModelFolderError(unreadable_checkpoint_message(path, "train the fold again or restore the file"))
    if unpickle_check:
        check_checkpoints_load_safely(model_folder, folds, checkpoint, args)


def check_checkpoints_load_safely(model_folder: Path, folds: list[int | str], checkpoint: str,
                                  args: argparse.Namespace) -> None:
    """nnU-Net loads checkpoints in full (code in them would run): only once they hold nothing but plain data,
    unless ``--trust-pickles``."""
    if getattr(args, "trust_pickles", False):
        return
    for fold in folds:
        load_checkpoint_safely(model_folder / f"fold_{fold}" / checkpoint)


def parse_folds(folds: list[str]) -> list[int | str]:
    return [fold if fold == "all" else int(fold) for fold in folds]


def with_plugin_trainers() -> None:
    """nnU-Net finds the plugin's trainers by name (``nnUNet_extTrainer``); nnUNet_results must be set."""
    paths = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if str(TRAINER_FOLDER) not in paths:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([*paths, str(TRAINER_FOLDER)])
    if not os.environ.get("nnUNet_results"):
        raise UserError("nnUNet_results is not set: export it (the folder nnUNetv2_train wrote the model into)")
