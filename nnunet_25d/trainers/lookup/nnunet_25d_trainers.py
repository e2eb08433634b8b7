"""The module nnU-Net imports from ``nnUNet_extTrainer``: every plugin trainer by name, defined once in the
installed package (:mod:`nnunet_25d.trainers.registry`, which makes variants on demand and keeps them picklable).

nnU-Net finds a trainer with ``hasattr(module, name)``. For a name that looks like one of the plugin's but is not
declared (an even slab size, an undeclared schedule, a typo), ``__getattr__`` raises an error that says what is
wrong and names the closest trainers, instead of nnU-Net's generic "Could not find requested nnunet trainer".
Every other name (dunders, nnU-Net's own, other plugins') gets the usual ``AttributeError``.
"""
from nnunet_25d.trainers.registry import defined_in_another_trainer_folder as _defined_elsewhere
from nnunet_25d.trainers.registry import trainer_class as _trainer_class
from nnunet_25d.trainers.registry import trainer_name_error as _trainer_name_error


def __getattr__(name: str):
    trainer = None if name.startswith("_") else _trainer_class(name)
    if trainer is not None:
        return trainer
    error = None if name.startswith("_") else _trainer_name_error(name)
    if error is not None and not _defined_elsewhere(name):
        raise error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
