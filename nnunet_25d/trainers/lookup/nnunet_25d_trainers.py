"""The module nnU-Net imports from ``nnUNet_extTrainer``: it only re-exports the plugin's trainers, so every class
is defined once, in the installed package (and stays picklable).

nnU-Net finds a trainer with ``hasattr(module, name)``. For a name that looks like one of the plugin's but is not
declared (an even slab size, an undeclared schedule, a typo), the module-level ``__getattr__`` raises an error that
says what is wrong and names the closest trainers, instead of nnU-Net's generic "Could not find requested nnunet
trainer". ``<TRAINER>_seed<N>`` of a declared trainer (or of nnU-Net's ``nnUNetTrainer``) is made here on first
use: a seeded repeat (:mod:`nnunet_25d.trainers.seeds`). Every other name (dunders, nnU-Net's own, other plugins')
gets the usual ``AttributeError``.
"""
from nnunet_25d.trainers.registry import *  # noqa: F401,F403
from nnunet_25d.trainers.registry import defined_in_another_trainer_folder as _defined_elsewhere
from nnunet_25d.trainers.registry import TRAINERS as _TRAINERS
from nnunet_25d.trainers.registry import trainer_name_error as _trainer_name_error
from nnunet_25d.trainers.seeds import seeded_trainer as _seeded_trainer


def __getattr__(name: str):
    seeded = None if name.startswith("_") else _seeded_trainer(name, _TRAINERS, __name__)
    if seeded is not None:
        return seeded
    error = None if name.startswith("_") else _trainer_name_error(name)
    if error is not None and not _defined_elsewhere(name):
        raise error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
