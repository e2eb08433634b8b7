"""Trainer variants declared as data (made on demand by :mod:`nnunet_25d.trainers.registry`): slab sizes (``_5slices``) and schedules (nnU-Net's ``_Nepochs`` naming).

``nnUNetTrainer25D_5epochs`` trains 5 epochs of nnU-Net's 250 iterations. CPU-sized runs also shorten the epoch:
``nnUNetTrainer25D_10epochs_50iters`` (and ``nnUNetTrainer_10epochs_50iters`` for nnU-Net's own 2d/3d baseline
on the same schedule).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.trainers.seeds import split_seed

EPOCHS = (1, 5, 10, 20, 50, 100, 250)
# (epochs, iterations per epoch): sized for CPU tests, demos and benchmarks
CPU_SCHEDULES = ((2, 5), (3, 10), (5, 20), (10, 25), (10, 50), (20, 50))


SLAB_SIZES = (3, 5, 7)
VIEW_SLAB_SIZES = (1,)  # the view trainers' plain-2D option (slab 3 is their default)


def slab_suffix(slab_size: int) -> str:
    """``_1slice``, ``_3slices`` ..."""
    return f"_{slab_size}slice" + ("" if slab_size == 1 else "s")


def with_slab_size(base: type[nnUNetTrainer], slab_size: int, module: str = __name__) -> type[nnUNetTrainer]:
    """Subclass of a slab trainer that sees ``slab_size`` slices (``<base>_<n>slices``, ``<base>_1slice``)."""
    name = base.__name__ + slab_suffix(slab_size)
    return type(name, (base,), {"slab_size": slab_size, "__module__": module, "__qualname__": name})


def schedule_name(base_name: str, epochs: int, iterations: int | None = None) -> str:
    suffix = f"_{epochs}epoch" + ("" if epochs == 1 else "s")
    return base_name + suffix + (f"_{iterations}iters" if iterations else "")


def with_schedule(base: type[nnUNetTrainer], epochs: int, iterations: int | None = None,
                  module: str = __name__) -> type[nnUNetTrainer]:
    """Subclass of ``base`` that trains ``epochs`` epochs of ``iterations`` steps (nnU-Net's 250 if None)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = epochs
        if iterations is not None:
            self.num_iterations_per_epoch = iterations
            self.num_val_iterations_per_epoch = max(1, iterations // 5)
            self.save_every = 1

    name = schedule_name(base.__name__, epochs, iterations)
    return type(name, (base,), {"__init__": __init__, "__module__": module, "__qualname__": name})


# <base>[_<N>slices][_<E>epoch(s)[_<I>iters]], loose enough to catch the usual typos (epoch/epochs, iter/iters)
_SCHEDULE_SUFFIX = re.compile(r"_(?P<epochs>\d+)(?P<epoch_word>epochs?)(?:_(?P<iterations>\d+)(?P<iter_word>iters?))?$",
                              re.IGNORECASE)
_SLAB_SUFFIX = re.compile(r"_(?P<slabs>\d+)(?P<slab_word>slices?)$", re.IGNORECASE)


@dataclass(frozen=True)
class TrainerNameParts:
    """A trainer name split into base, slab size and schedule, with the suffixes exactly as written."""

    base: str
    slab_size: int | None = None
    slab_word: str | None = None
    epochs: int | None = None
    epoch_word: str | None = None
    iterations: int | None = None
    iter_word: str | None = None
    seed: int = 0  # a seeded repeat's _seedN

    @property
    def schedule(self) -> tuple[int, int] | None:
        return (self.epochs, self.iterations) if self.epochs is not None and self.iterations is not None else None


def split_trainer_name(name: str) -> TrainerNameParts:
    """``nnUNetTrainer25D_5slices_10epochs_50iters[_seed2]`` -> base ``nnUNetTrainer25D``, 5 slices, 10 x 50
    (seed 2)."""
    name, seed = split_seed(name)
    fields: dict = {"seed": seed} if seed else {}
    schedule = _SCHEDULE_SUFFIX.search(name)
    if schedule:
        name = name[:schedule.start()]
        fields.update(epochs=int(schedule["epochs"]), epoch_word=schedule["epoch_word"])
        if schedule["iterations"]:
            fields.update(iterations=int(schedule["iterations"]), iter_word=schedule["iter_word"])
    slab = _SLAB_SUFFIX.search(name)
    if slab:
        name = name[:slab.start()]
        fields.update(slab_size=int(slab["slabs"]), slab_word=slab["slab_word"])
    return TrainerNameParts(base=name, **fields)
