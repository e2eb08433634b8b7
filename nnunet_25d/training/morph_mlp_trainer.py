"""nnUNetTrainer25DMorphMLP: a MorphMLP encoder over each slice's slab (the slices play the video frames)."""
from __future__ import annotations

from nnunet_25d.configuration import MORPH_MLP_NETWORK, TrainingSetup, derive_morph_mlp_plans
from nnunet_25d.training.optimisation import WarmupCosineLR, adamw_without_decay_on_norms_and_biases
from nnunet_25d.training.slab_trainer import nnUNetTrainer25D


class nnUNetTrainer25DMorphMLP(nnUNetTrainer25D):
    """MorphMLP-``size`` slab encoder + convolutional U-Net decoder, trained with AdamW, linear warm-up and cosine
    decay (per epoch, as nnU-Net steps its schedule). Thin patches and augmentation as nnUNetTrainer25D."""

    slab_size = 3
    network_class = MORPH_MLP_NETWORK
    size = "T"
    optimiser = "adamw"  # "sgd": nnU-Net's own SGD + poly schedule (for comparison)
    adamw_lr = 1e-3
    adamw_weight_decay = 0.05
    warmup_fraction = 0.05  # of the epochs, at least one

    @classmethod
    def derive_plans(cls, plans: dict, configuration: str, setup: TrainingSetup = TrainingSetup()) -> dict:
        return derive_morph_mlp_plans(plans, configuration, cls.slab_size, cls.size, setup=setup)

    def configure_optimizers(self):
        if self.optimiser == "sgd":
            return super().configure_optimizers()
        self.initial_lr = self.adamw_lr
        optimizer = adamw_without_decay_on_norms_and_biases(self.network, self.adamw_lr, self.adamw_weight_decay)
        warmup = max(1, round(self.warmup_fraction * self.num_epochs)) if self.num_epochs > 1 else 0
        self.print_to_log_file(f"MorphMLP-{self.size}: AdamW lr {self.adamw_lr}, weight decay "
                               f"{self.adamw_weight_decay}, {warmup} warm-up epochs, cosine decay")
        return optimizer, WarmupCosineLR(optimizer, self.adamw_lr, self.num_epochs, warmup)


class nnUNetTrainer25DMorphMLP_S(nnUNetTrainer25DMorphMLP):
    size = "S"


class nnUNetTrainer25DMorphMLP_N(nnUNetTrainer25DMorphMLP):
    """Nano size (CPU runs, tests)."""

    size = "N"


class nnUNetTrainer25DMorphMLP_N_SGD(nnUNetTrainer25DMorphMLP_N):
    """Nano size with nnU-Net's SGD (lr 1e-2, momentum 0.99, poly): the optimiser ablation."""

    optimiser = "sgd"


