"""Seeded repeats of any declared trainer: ``<TRAINER>_seed<N>`` (N ≥ 1) trains the same model again with torch,
NumPy and Python's generators seeded with N, into a results folder of its own, so a benchmark can separate the
spread between training runs from the spread between cases. nnU-Net's trainers seed nothing (each run differs
anyway); seed 0 is the plain name. Augmentation workers (``nnUNet_n_proc_DA`` > 0) draw their own randomness, as in
nnU-Net, so a seeded run is a labelled repeat, not a bit-for-bit rerun.

The classes are made on first use (:func:`nnunet_25d.trainers.registry.trainer_class`) and kept, so nnU-Net's
``hasattr``/``getattr`` lookup and pickling see one class per name."""
from __future__ import annotations

import random
import re

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

_SEED_SUFFIX = re.compile(r"_seed(?P<seed>[1-9]\d*)$")


def seeded_name(trainer: str, seed: int) -> str:
    """The trainer name of repeat ``seed`` (seed 0: the name itself)."""
    return trainer if seed == 0 else f"{trainer}_seed{seed}"


def split_seed(name: str) -> tuple[str, int]:
    """``nnUNetTrainer25D_seed2`` -> (``nnUNetTrainer25D``, 2); a name without the suffix has seed 0."""
    found = _SEED_SUFFIX.search(name)
    return (name[:found.start()], int(found["seed"])) if found else (name, 0)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def with_seed(base: type[nnUNetTrainer], seed: int, module: str) -> type[nnUNetTrainer]:
    """Subclass of ``base`` that seeds the generators before ``base`` builds anything."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        seed_everything(seed)
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.print_to_log_file(f"nnunet_25d: seed {seed} (torch, NumPy, random) for this repeat of {base.__name__}")

    name = seeded_name(base.__name__, seed)
    return type(name, (base,), {"__init__": __init__, "__module__": module, "__qualname__": name, "seed": seed})
