"""The module nnU-Net imports from ``nnUNet_extTrainer``: it only re-exports the plugin's trainers, so every class
is defined once, in the installed package (and stays picklable)."""
from nnunet_25d.training.registry import *  # noqa: F401,F403
