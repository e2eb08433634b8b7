"""nnUNetTrainer25D: slab input (slices z-k..z+k as channels of nnU-Net's planned 2D network)."""
from __future__ import annotations

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.augmentation import blur_in_plane_only, configure_in_plane_augmentation
from nnunet_25d.configuration import SLAB_NETWORK, derive_slab_plans


def require_preprocessed_data(trainer: nnUNetTrainer) -> None:
    """Fail early, naming the command to run, when the configuration's preprocessed data is missing."""
    folder = trainer.preprocessed_dataset_folder
    if not trainer.was_initialized and folder is not None and not os.path.isdir(folder):
        raise FileNotFoundError(
            f"no preprocessed data at {folder}: run `nnUNetv2_plan_and_preprocess -d "
            f"{trainer.plans_manager.dataset_name} -c {trainer.configuration_name}` (or `nnUNetv2_preprocess`) first"
        )


class nnUNetTrainer25D(nnUNetTrainer):
    """Train on thin 3D patches of consecutive slices; each slice is predicted from its slab.

    The slab configuration is derived from the ``2d`` configuration before ``nnUNetTrainer.__init__`` runs, so
    the plans saved with the model (and used by ``nnUNetv2_predict``) are exactly those trained on.
    """

    slab_size: int = 3
    network_class: str = SLAB_NETWORK
    default_configuration: str = "2d"  # what the benchmark trains it on unless told otherwise

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(self.derive_plans(plans, configuration), configuration, fold, dataset_json, device)

    def initialize(self) -> None:
        require_preprocessed_data(self)
        super().initialize()

    @classmethod
    def derive_plans(cls, plans: dict, configuration: str) -> dict:
        """The plans this trainer trains on (and saves with the model), derived from nnU-Net's."""
        return derive_slab_plans(plans, configuration, cls.slab_size, cls.network_class, cls.extra_arch_kwargs())

    @classmethod
    def extra_arch_kwargs(cls) -> dict:
        """Hyper-parameters a subclass adds to the network's plans entry."""
        return {}

    @staticmethod
    def get_training_transforms(*args, **kwargs):
        return blur_in_plane_only(nnUNetTrainer.get_training_transforms(*args, **kwargs))

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        self.print_to_log_file(f"2.5D: slab of {self.slab_size} slices, patch {self.configuration_manager.patch_size}")
        return configure_in_plane_augmentation(self)
