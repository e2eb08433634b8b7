"""Every trainer the plugin offers, by name."""
from nnunet_25d.training.schedules import SCHEDULED_TRAINERS
from nnunet_25d.training.slab_trainer import (
    nnUNetTrainer25D,
    nnUNetTrainer25D_3slices,
    nnUNetTrainer25D_5slices,
    nnUNetTrainer25D_7slices,
)

TRAINERS = {
    cls.__name__: cls
    for cls in (nnUNetTrainer25D, nnUNetTrainer25D_3slices, nnUNetTrainer25D_5slices, nnUNetTrainer25D_7slices)
}
TRAINERS.update(SCHEDULED_TRAINERS)
globals().update(TRAINERS)
__all__ = sorted(TRAINERS)
