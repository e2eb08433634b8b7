"""Which preprocessed data a trainer reads: its configuration's, a fixed other one (``nnUNetTrainer25DResampled``:
``3d_fullres``), or, for the self-configuring ``nnUNetTrainer25D``, the one it chooses from the dataset's plans and
fingerprint (known once the dataset is planned)."""
from __future__ import annotations

from pathlib import Path

from nnunet_25d.planning.self_configuration import dataset_choice
from nnunet_25d.trainers.seeds import split_seed


def data_configurations(trainer: str, configuration: str, preprocessed_dataset: Path | None = None,
                        plans_name: str = "nnUNetPlans") -> set[str]:
    """The configurations whose preprocessed data ``trainer`` (a declared name, schedule and seed suffixes
    allowed) trains on when trained as ``configuration``; a self-configuring trainer's choice is read from
    ``preprocessed_dataset``'s plans and fingerprint (only ``configuration`` while they do not exist yet)."""
    from nnunet_25d.trainers.registry import TRAINERS

    trainer_class = TRAINERS.get(split_seed(trainer)[0])
    needed = {configuration}
    if getattr(trainer_class, "self_configuring", False):
        choice = dataset_choice(preprocessed_dataset, plans_name) if preprocessed_dataset is not None else None
        data = choice.data_configuration if choice is not None else None
    else:
        data = getattr(trainer_class, "data_configuration", None)
    return needed | ({data} if data else set())
