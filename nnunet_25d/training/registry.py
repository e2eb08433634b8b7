"""Every trainer the plugin offers, by name (the classes are defined once, here or in the modules imported)."""
from nnunet_25d.training.aniso_trainer import (
    nnUNetTrainer25DAniso,
    nnUNetTrainer25DAniso_HardnessDice,
    nnUNetTrainer25DAniso_NoAttention,
)
from nnunet_25d.training.fusion_trainer import (
    nnUNetTrainer25DFusion,
    nnUNetTrainer25DFusion_3slices,
    nnUNetTrainer25DFusion_5slices,
    nnUNetTrainer25DFusion_7slices,
)
from nnunet_25d.training.schedules import declare_schedules
from nnunet_25d.training.slab_trainer import (
    nnUNetTrainer25D,
    nnUNetTrainer25D_3slices,
    nnUNetTrainer25D_5slices,
    nnUNetTrainer25D_7slices,
)

PLUGIN_TRAINERS = (
    nnUNetTrainer25D, nnUNetTrainer25D_3slices, nnUNetTrainer25D_5slices, nnUNetTrainer25D_7slices,
    nnUNetTrainer25DFusion, nnUNetTrainer25DFusion_3slices, nnUNetTrainer25DFusion_5slices,
    nnUNetTrainer25DFusion_7slices,
    nnUNetTrainer25DAniso, nnUNetTrainer25DAniso_NoAttention, nnUNetTrainer25DAniso_HardnessDice,
)
TRAINERS = {cls.__name__: cls for cls in PLUGIN_TRAINERS}
TRAINERS.update(declare_schedules(PLUGIN_TRAINERS, module=__name__))
globals().update(TRAINERS)
__all__ = sorted(TRAINERS)
