"""nnUNetTrainer25DDeepLab (the slab as channels of DeepLabV3+) and nnUNetTrainer25DASPP (an ASPP bottleneck on the
planned 2D U-Net): the 2.5D DeepLabv3+ design (kidney tumour CT, adjacent slices as input channels)."""
from __future__ import annotations

import math

import numpy as np
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_25d.planning.configuration import (
    SLAB_KEY,
    SLAB_NETWORK,
    ConfigurationError,
    TrainingSetup,
    check_source,
    derive_thin_slab_plans,
    slices_per_step,
)
from nnunet_25d.trainers.slab_trainer import derive_slab_plans, nnUNetTrainer25D

DEEPLAB_2D = "nnunet_25d.architectures.deeplab.DeepLabV3Plus2D"
ASPP_UNET = "nnunet_25d.architectures.aspp_unet.ASPPUNet"
DEEPLAB_RATES = (6, 12, 18)
DEEPLAB_FEATURE_MAP = 33  # DeepLabv3's 513-pixel crops at output stride 16: what its rates 6/12/18 were chosen for


def derive_deeplab_plans(plans: dict, configuration: str, slab_size: int, hyper_parameters: dict,
                         setup: TrainingSetup = TrainingSetup()) -> dict:
    """Plans whose ``configuration`` (a 2d one) trains :class:`SlabNetwork` around :class:`DeepLabV3Plus2D` with
    ``hyper_parameters`` (its constructor arguments). Thin patch and batch as the slab trainer's; the in-plane patch
    is rounded up to a multiple of the encoder's output stride (nnU-Net pads)."""
    stride = hyper_parameters["encoder_output_stride"]
    if stride not in (8, 16):
        raise ConfigurationError(f"DeepLabV3+ needs encoder_output_stride 8 or 16, got {stride}")
    marker = {"slab_size": slab_size, "network": SLAB_NETWORK, "network_2d": DEEPLAB_2D, **hyper_parameters}

    def build(source: dict) -> None:
        depth, *patch_in_plane = source["patch_size"]
        patch_in_plane = [math.ceil(n / stride) * stride for n in patch_in_plane]
        source[SLAB_KEY]["training_patch_size"][1:] = patch_in_plane
        source.update(
            patch_size=[depth, *patch_in_plane],
            architecture={
                "network_class_name": SLAB_NETWORK,
                "arch_kwargs": {"slab_size": slab_size, "network_2d": DEEPLAB_2D,
                                "slices_per_forward": slices_per_step(source), **hyper_parameters},
                "_kw_requires_import": [],
            },
        )

    return derive_thin_slab_plans(plans, configuration, slab_size, marker, setup, build)


class nnUNetTrainer25DDeepLab(nnUNetTrainer25D):
    """Slab of ``slab_size`` slices as input channels of DeepLabV3+ (segmentation_models_pytorch; DPN-68 encoder
    from random weights, ASPP rates 6/12/18 at output stride 16, DeepLabv3+ decoder).

    nnU-Net's deep supervision is off (as in nnU-Net's nnUNetTrainerNoDeepSupervision): DeepLabV3+ has one output.
    Loss, optimiser (SGD, poly), augmentation and slab context are nnUNetTrainer25D's.
    """

    slab_size = 3
    encoder_name = "dpn68"
    encoder_output_stride = 16
    atrous_rates = DEEPLAB_RATES
    decoder_channels = 256
    aspp_separable = True  # DeepLabv3+'s depthwise-separable ASPP and decoder convolutions
    aspp_dropout = 0.5
    pooling_norm_groups = 32  # GroupNorm in ASPP's image pooling: a step of one slice trains (BatchNorm raises)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False

    @classmethod
    def hyper_parameters(cls) -> dict:
        """DeepLabV3Plus2D's constructor arguments, as the plans store them."""
        return {"encoder_name": cls.encoder_name, "encoder_output_stride": cls.encoder_output_stride,
                "atrous_rates": list(cls.atrous_rates), "decoder_channels": cls.decoder_channels,
                "aspp_separable": cls.aspp_separable, "aspp_dropout": cls.aspp_dropout,
                "pooling_norm_groups": cls.pooling_norm_groups}

    @classmethod
    def derive_plans(cls, plans: dict, configuration: str, setup: TrainingSetup | None = None) -> dict:
        return derive_deeplab_plans(plans, configuration, cls.slab_size, cls.hyper_parameters(),
                                    cls.batch_setup(setup))


def bottleneck_size(configuration: dict) -> int:
    """Smaller in-plane side of the planned U-Net's bottleneck feature map (2D or slab-derived configuration)."""
    patch = configuration["patch_size"][-2:]
    total_stride = np.prod([s[-2:] for s in configuration["architecture"]["arch_kwargs"]["strides"]], axis=0)
    return int(min(p // t for p, t in zip(patch, total_stride)))


def aspp_rates_for(feature_map: int, rates=DEEPLAB_RATES, reference: int = DEEPLAB_FEATURE_MAP) -> list[int]:
    """DeepLab's rates scaled from its 33-pixel feature map to ``feature_map`` pixels (the same fraction of the
    map), each at least one more than the previous and at most ``feature_map - 1`` (beyond that a dilated 3x3 sees
    only zero padding beside its centre)."""
    scaled: list[int] = []
    for rate in rates:
        rate = max(round(rate * feature_map / reference), scaled[-1] + 1 if scaled else 1)
        scaled.append(max(1, min(rate, feature_map - 1)))
    return scaled


class nnUNetTrainer25DASPP(nnUNetTrainer25D):
    """nnUNetTrainer25D whose planned 2D U-Net gets an ASPP module on its bottleneck (:class:`ASPPUNet`); the
    rates are DeepLab's 6/12/18 scaled to the bottleneck's size (:func:`aspp_rates_for`). Deep supervision as
    nnU-Net's."""

    slab_size = 3

    @classmethod
    def derive_plans(cls, plans: dict, configuration: str, setup: TrainingSetup | None = None) -> dict:
        check_source(plans, configuration)
        planned = PlansManager(plans).get_configuration(configuration).configuration
        extra = {"network_2d": ASPP_UNET, "aspp_rates": aspp_rates_for(bottleneck_size(planned))}
        return derive_slab_plans(plans, configuration, cls.slab_size, cls.network_class, extra,
                                 cls.batch_setup(setup), cls.data_configuration)
