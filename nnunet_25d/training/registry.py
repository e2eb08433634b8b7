"""Every trainer the plugin offers, by name. Base classes are defined in their own modules; variants (slab sizes,
schedules) are declared here as data and live in this module's namespace, so they pickle by name."""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d.training.aniso_trainer import (
    nnUNetTrainer25DAniso,
    nnUNetTrainer25DAniso_HardnessDice,
    nnUNetTrainer25DAniso_NoAttention,
)
from nnunet_25d.training.fusion_trainer import nnUNetTrainer25DFusion
from nnunet_25d.training.morph_mlp_trainer import (
    nnUNetTrainer25DMorphMLP,
    nnUNetTrainer25DMorphMLP_N,
    nnUNetTrainer25DMorphMLP_N_SGD,
    nnUNetTrainer25DMorphMLP_S,
)
from nnunet_25d.training.slab_trainer import nnUNetTrainer25D
from nnunet_25d.training.variants import SLAB_SIZES, declare_schedules, with_slab_size
from nnunet_25d.training.view_trainer import nnUNetTrainer25DAxial, nnUNetTrainer25DCoronal, nnUNetTrainer25DSagittal

SLAB_TRAINERS = (nnUNetTrainer25D, nnUNetTrainer25DFusion, nnUNetTrainer25DMorphMLP)
VIEW_TRAINERS = (nnUNetTrainer25DAxial, nnUNetTrainer25DCoronal, nnUNetTrainer25DSagittal)
ANISO_TRAINERS = (nnUNetTrainer25DAniso, nnUNetTrainer25DAniso_NoAttention, nnUNetTrainer25DAniso_HardnessDice)
MORPH_MLP_VARIANTS = (nnUNetTrainer25DMorphMLP_S, nnUNetTrainer25DMorphMLP_N, nnUNetTrainer25DMorphMLP_N_SGD)


def _plugin_trainers() -> tuple[type[nnUNetTrainer], ...]:
    sized = tuple(with_slab_size(base, n, module=__name__) for base in SLAB_TRAINERS for n in SLAB_SIZES)
    return SLAB_TRAINERS + sized + ANISO_TRAINERS + MORPH_MLP_VARIANTS + VIEW_TRAINERS


PLUGIN_TRAINERS = _plugin_trainers()
# what `nnunet25d benchmark` runs by default next to nnU-Net's 2d and 3d_fullres: (trainer, configuration)
BENCHMARK_VARIANTS = (
    ("nnUNetTrainer25D", "2d"),
    ("nnUNetTrainer25D_5slices", "2d"),
    ("nnUNetTrainer25DFusion", "2d"),
    ("nnUNetTrainer25DAniso", "3d_fullres"),
    ("nnUNetTrainer25DMorphMLP", "2d"),
    ("nnUNetTrainer25DCoronal", "3d_fullres"),
    ("nnUNetTrainer25DSagittal", "3d_fullres"),
)
TRAINERS = {cls.__name__: cls for cls in PLUGIN_TRAINERS}
TRAINERS.update(declare_schedules(PLUGIN_TRAINERS, module=__name__))
globals().update(TRAINERS)
__all__ = sorted(TRAINERS)
