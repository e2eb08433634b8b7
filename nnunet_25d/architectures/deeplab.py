"""DeepLabV3Plus2D: segmentation_models_pytorch's DeepLabV3+ (DPN encoder, ASPP, DeepLabv3+ decoder) as the 2D network
of a :class:`~nnunet_25d.architectures.slab_network.SlabNetwork` (the slab's slices are its input channels)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnunet_25d.errors import SetupError


class TorchvisionMismatch(SetupError):
    """segmentation_models_pytorch (through timm) needs a torchvision built for the installed torch."""


def segmentation_models():
    """``segmentation_models_pytorch``, imported on first use: where torchvision comes from another build than torch
    (a CPU torch beside PyPI's CUDA torchvision) it fails to load, and only this network needs it."""
    try:
        import segmentation_models_pytorch
    except (ImportError, RuntimeError) as error:
        import torch as installed

        raise TorchvisionMismatch(
            f"DeepLabV3+ needs segmentation_models_pytorch, which failed to load ({error}); torch "
            f"{installed.__version__} and torchvision must come from the same build: `pip install torch torchvision "
            f"--index-url https://download.pytorch.org/whl/cpu` (CPU) or `pip install torch torchvision` (CUDA)"
        ) from error
    return segmentation_models_pytorch


class DeepLabV3Plus2D(nn.Module):
    """(N, input_channels, H, W) -> (N, num_classes, H, W) logits; H and W must be multiples of
    ``encoder_output_stride`` (the trainer rounds the planned patch up).

    ``smp.DeepLabV3Plus`` with nnU-Net's constructor names. The encoder (``encoder_name``, any smp encoder; ``dpn68``
    by default, a Dual Path Network as in the 2.5D kidney-tumour paper) starts from random weights: nnU-Net's
    commands run without network access, so no pretrained weights are downloaded, and any number of input channels
    is as good as three (the paper's three slices filled an RGB-pretrained encoder's input). ASPP
    (``atrous_rates``) sits on the encoder's stride-``encoder_output_stride`` features; the decoder fuses its
    output with the stride-4 features and upsamples bilinearly to the input size.

    There is one output: DeepLabV3+ has no per-scale heads, so ``deep_supervision=True`` is refused (the trainer
    switches nnU-Net's deep supervision off). ``decoder`` is smp's decoder, where nnU-Net sets its
    ``deep_supervision`` flag; the flag has no effect. Normalisation is the BatchNorm of DPN and DeepLab, except in
    ASPP's image-pooling branch: there BatchNorm sees one value per channel and slice (the pooled 1x1 map), which
    cannot be normalised when a training step holds one slice (DDP with a 2d batch of 2), so that branch uses
    GroupNorm of ``pooling_norm_groups`` groups (per slice, over channels; ``decoder_channels`` must split into that
    many groups of at least two channels).
    """

    def __init__(self, input_channels: int, num_classes: int, deep_supervision: bool = False,
                 encoder_name: str = "dpn68", encoder_output_stride: int = 16,
                 atrous_rates: Sequence[int] = (6, 12, 18), decoder_channels: int = 256,
                 aspp_separable: bool = True, aspp_dropout: float = 0.5, pooling_norm_groups: int = 32):
        super().__init__()
        if deep_supervision:
            raise ValueError("DeepLabV3Plus2D has a single output and no deep supervision heads: build it with "
                             "deep_supervision=False (nnUNetTrainer25DDeepLab switches nnU-Net's deep supervision off)")
        self.network = segmentation_models().DeepLabV3Plus(
            encoder_name=encoder_name, encoder_weights=None, encoder_output_stride=encoder_output_stride,
            decoder_atrous_rates=tuple(atrous_rates), decoder_channels=decoder_channels,
            decoder_aspp_separable=aspp_separable, decoder_aspp_dropout=aspp_dropout,
            in_channels=input_channels, classes=num_classes,
        )
        self._group_norm_in_image_pooling(pooling_norm_groups)

    def _group_norm_in_image_pooling(self, groups: int) -> None:
        pooling = self.aspp.convs[-1]  # smp's ASPPPooling: average pooling, 1x1 convolution, BatchNorm, ReLU
        norm_index = next(i for i, m in enumerate(pooling) if isinstance(m, nn.BatchNorm2d))
        channels = pooling[norm_index].num_features
        if groups < 1 or channels % groups or channels // groups < 2:
            raise ValueError(f"pooling_norm_groups must split the {channels} decoder channels into groups of at least "
                             f"two channels (a divisor of {channels} up to {channels // 2}), got {groups}")
        pooling[norm_index] = nn.GroupNorm(groups, channels)

    @property
    def decoder(self) -> nn.Module:
        return self.network.decoder

    @property
    def aspp(self) -> nn.Module:
        """smp's ASPP: ``convs`` = [1x1, one 3x3 branch per atrous rate, image pooling], then ``project``."""
        return self.network.decoder.aspp[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)
