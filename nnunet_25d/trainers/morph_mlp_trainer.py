"""nnUNetTrainer25DMorphMLP: a MorphMLP encoder over each slice's slab (the slices play the video frames)."""
from __future__ import annotations

import math

from nnunet_25d.trainers.checkpoints import RefusesOtherArchitectures
from nnunet_25d.architectures.morph_mlp_slab_network import MORPH_MLP_STRIDES
from nnunet_25d.architectures.blocks.morph_mlp_chunks import chunk_lengths_for
from nnunet_25d.architectures.morph_mlp_unet import MORPH_MLP_SIZES
from nnunet_25d.planning.configuration import (
    SLAB_KEY,
    ConfigurationError,
    TrainingSetup,
    derive_thin_slab_plans,
    slices_per_step,
)
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D

MORPH_MLP_NETWORK = "nnunet_25d.architectures.morph_mlp_slab_network.MorphMLPSlabNetwork"


def derive_morph_mlp_plans(plans: dict, configuration: str, slab_size: int, size: str,
                           hyper_parameters: dict | None = None, setup: TrainingSetup = TrainingSetup()) -> dict:
    """Plans whose ``configuration`` (a 2d one) trains :class:`MorphMLPSlabNetwork` of table entry ``size``.

    Thin patch and batch as the slab trainer's; the in-plane patch is rounded up to a multiple of the encoder's
    largest stride (32; nnU-Net pads), so that :func:`chunk_lengths_for` always finds the paper's schedule (per
    stage the H and W branches' chunk lengths: a quarter line, one line, two lines, global; capped so that they
    never shrink with depth); the two convolutional levels take the 2d plan's first two feature counts.
    """
    if size not in MORPH_MLP_SIZES:
        raise ConfigurationError(f"MorphMLP size {size!r} is not in the table; choose one of {sorted(MORPH_MLP_SIZES)}")
    marker = {"slab_size": slab_size, "network": MORPH_MLP_NETWORK, "size": size, **(hyper_parameters or {})}
    table = MORPH_MLP_SIZES[size]

    def build(source: dict) -> None:
        largest_stride = 2 ** (len(MORPH_MLP_STRIDES) - 1)
        depth, *patch_in_plane = source["patch_size"]
        patch_in_plane = [math.ceil(n / largest_stride) * largest_stride for n in patch_in_plane]
        features = source["architecture"]["arch_kwargs"]["features_per_stage"]
        source[SLAB_KEY]["training_patch_size"][1:] = patch_in_plane
        source.update(
            patch_size=[depth, *patch_in_plane],
            architecture={
                "network_class_name": MORPH_MLP_NETWORK,
                "arch_kwargs": {
                    "slab_size": slab_size,
                    "slices_per_forward": slices_per_step(source),
                    "depths": list(table["depths"]),
                    "dims": list(table["dims"]),
                    "chunk_lengths": chunk_lengths_for(patch_in_plane, table["dims"]),
                    "conv_features": list(features[:2]),
                    "strides": MORPH_MLP_STRIDES,
                    **(hyper_parameters or {}),
                },
                "_kw_requires_import": [],
            },
        )

    return derive_thin_slab_plans(plans, configuration, slab_size, marker, setup, build)


class nnUNetTrainer25DMorphMLP(RefusesOtherArchitectures, nnUNetTrainer25D):
    """MorphMLP-``size`` slab encoder + convolutional U-Net decoder, trained with AdamW, linear warm-up and cosine
    decay (per epoch, as nnU-Net steps its schedule). Thin patches and augmentation as nnUNetTrainer25D.

    Patch embedding and last stage as MTLab's reference (overlapping 3x3 stride-2 convolutions with BatchNorm and
    GELU; a last stage of one global spatial branch and the channel branch); a checkpoint of another version of
    the network is refused in one line naming the retrain."""

    slab_size = 3
    network_class = MORPH_MLP_NETWORK
    size = "T"
    optimiser = "adamw"  # "sgd": nnU-Net's own SGD + poly schedule (for comparison)
    patch_embedding = "reference"  # "linear": non-overlapping 4x4 / 2x2 convolutions + LayerNorm
    last_stage = "reference"  # "chunks": the three branches of the other stages

    @classmethod
    def derive_plans(cls, plans: dict, configuration: str, setup: TrainingSetup | None = None) -> dict:
        return derive_morph_mlp_plans(plans, configuration, cls.slab_size, cls.size,
                                      {"patch_embedding": cls.patch_embedding, "last_stage": cls.last_stage},
                                      setup=cls.batch_setup(setup))


class nnUNetTrainer25DMorphMLP_S(nnUNetTrainer25DMorphMLP):
    """Small size (the reference's MorphMLP-S dimensions)."""

    size = "S"


class nnUNetTrainer25DMorphMLP_N(nnUNetTrainer25DMorphMLP):
    """Nano size (CPU runs, tests)."""

    size = "N"


class nnUNetTrainer25DMorphMLP_N_SGD(nnUNetTrainer25DMorphMLP_N):
    """Nano size with nnU-Net's SGD (lr 1e-2, momentum 0.99, poly): the optimiser ablation."""

    optimiser = "sgd"


class nnUNetTrainer25DMorphMLP_LinearPatches(nnUNetTrainer25DMorphMLP):
    """Ablation of nnUNetTrainer25DMorphMLP: non-overlapping 4x4 / 2x2 patch convolutions with LayerNorm, and a last
    stage with the three branches of the others (both spatial ones global there)."""

    patch_embedding = "linear"
    last_stage = "chunks"


class nnUNetTrainer25DMorphMLP_N_LinearPatches(nnUNetTrainer25DMorphMLP_LinearPatches):
    """Nano size of the linear-patch ablation (CPU runs beside nnUNetTrainer25DMorphMLP_N)."""

    size = "N"
