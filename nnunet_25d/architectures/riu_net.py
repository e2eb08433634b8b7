"""RIU-Net (Lv et al., BSPC 2022) as a 2D network for the slab trainers.

:class:`RIUNetReference` is the network of the authors' code (lvpeiqing/RIU-Net, ``net/ince5.py``): a 3x3 stem, one
:class:`~nnunet_25d.architectures.blocks.inception_residual.InceptionResidualBlock` per level, max pooling, a plain
double-convolution bottleneck, transposed-convolution upsampling and one block per decoder level. :class:`RIUNet`
is an ablation: nnU-Net's planned topology with InceptionV3-style factorised blocks
(:class:`~nnunet_25d.architectures.blocks.residual_inception.ResidualInceptionBlock`), two per stage.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

import torch

from nnunet_25d.architectures.blocks.inception_residual import InceptionResidualBlock, double_conv
from nnunet_25d.architectures.blocks.residual_inception import ResidualInceptionBlock
from nnunet_25d.architectures.blocks.stage_decoder import StageDecoder
from nnunet_25d.architectures.blocks.stage_unet import StageUNet, per_stage

AUTHORS_LEVELS = 5  # ince5.py: features 32, 64, 128, 256 and a 512-feature bottleneck


class ResidualInceptionStage(nn.Sequential):
    """[max pooling by ``stride``] -> ``n_blocks`` :class:`ResidualInceptionBlock` s (the first maps
    ``in_channels`` to ``out_channels``)."""

    def __init__(self, n_blocks: int, in_channels: int, out_channels: int, kernel_size, stride=1, **block_kwargs):
        stride = tuple(stride) if not isinstance(stride, int) else (stride, stride)
        layers: list[nn.Module] = [nn.MaxPool2d(stride, stride)] if any(s > 1 for s in stride) else []
        layers += [ResidualInceptionBlock(in_channels if i == 0 else out_channels, out_channels, kernel_size,
                                          **block_kwargs) for i in range(n_blocks)]
        super().__init__(*layers)


class RIUNet(StageUNet):
    """(N, input_channels, H, W) -> (N, num_classes, H, W) logits (deep supervision: a list, one per decoder stage,
    highest resolution first).

    Takes nnU-Net's 2D plan (``PlainConvUNet``'s keyword arguments) and keeps its stages, feature counts, kernel
    sizes, strides and skips; each planned convolution becomes a :class:`ResidualInceptionBlock` (so a stage of two
    convolutions has two blocks), downsampling is max pooling before a stage (the U-Net of RIU-Net) and upsampling
    nnU-Net's transposed convolution. On nnU-Net's planned topologies this holds 33-37 % of the planned
    PlainConvUNet's parameters (the paper: about 70 % fewer than a U-Net). ``dropout_op`` is not used.
    """

    def __init__(self, input_channels: int, num_classes: int, n_stages: int,
                 features_per_stage: int | Sequence[int], kernel_sizes: Sequence, strides: Sequence,
                 n_conv_per_stage: int | Sequence[int], n_conv_per_stage_decoder: int | Sequence[int],
                 conv_op: type[nn.Module] = nn.Conv2d, conv_bias: bool = True,
                 norm_op: type[nn.Module] | None = nn.InstanceNorm2d, norm_op_kwargs: dict | None = None,
                 dropout_op: type[nn.Module] | None = None, dropout_op_kwargs: dict | None = None,
                 nonlin: type[nn.Module] | None = nn.LeakyReLU, nonlin_kwargs: dict | None = None,
                 deep_supervision: bool = False):
        block_kwargs = dict(norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin,
                            nonlin_kwargs=nonlin_kwargs, conv_bias=conv_bias)
        super().__init__(input_channels, num_classes, n_stages, features_per_stage, kernel_sizes, strides,
                         n_conv_per_stage, n_conv_per_stage_decoder, conv_op=conv_op, conv_bias=conv_bias,
                         deep_supervision=deep_supervision,
                         build_stage=lambda n, c_in, c_out, kernel, stride: ResidualInceptionStage(
                             n, c_in, c_out, kernel, stride, **block_kwargs))


class RIUNetReference(nn.Module):
    """(N, input_channels, H, W) -> (N, num_classes, H, W) logits (deep supervision: a list, one per decoder level,
    highest resolution first).

    The authors' layout (``net/ince5.py``) on the first ``min(n_stages, max_levels)`` levels of nnU-Net's 2D plan
    (its feature counts, 32 doubling to 512 by default, are the authors'; its in-plane strides set the pooling):

    - level 0: 3x3 conv (bias), norm, act, then one block (features[0] -> features[0]);
    - levels 1 .. L-2: max pooling by the level's stride, one block (features[l-1] -> features[l]);
    - level L-1 (bottleneck): max pooling, two (3x3 conv with bias, norm, act);
    - decoder, from the bottleneck up: 2x2 transposed convolution (bias) to the skip's channels, concatenation,
      one block (2 C -> C); a 1x1 convolution to the classes (one per level with deep supervision, nnU-Net's).

    ``authors_norm``: the reference's BatchNorm2d + ReLU (default); False takes the plan's ``norm_op`` and
    ``nonlin``. Kernel sizes are the reference's 3x3 whatever the plan says; ``n_conv_per_stage*`` and
    ``dropout_op`` are not used (one block per level).
    """

    def __init__(self, input_channels: int, num_classes: int, n_stages: int,
                 features_per_stage: int | Sequence[int], kernel_sizes: Sequence, strides: Sequence,
                 n_conv_per_stage: int | Sequence[int] = 1, n_conv_per_stage_decoder: int | Sequence[int] = 1,
                 conv_op: type[nn.Module] = nn.Conv2d, conv_bias: bool = True,
                 norm_op: type[nn.Module] | None = nn.InstanceNorm2d, norm_op_kwargs: dict | None = None,
                 dropout_op: type[nn.Module] | None = None, dropout_op_kwargs: dict | None = None,
                 nonlin: type[nn.Module] | None = nn.LeakyReLU, nonlin_kwargs: dict | None = None,
                 deep_supervision: bool = False, authors_norm: bool = True, max_levels: int = AUTHORS_LEVELS):
        super().__init__()
        if conv_op is not nn.Conv2d:
            raise ValueError(f"{type(self).__name__} is a 2D network (conv_op torch.nn.Conv2d), the plans give "
                             f"{conv_op}: derive it from a 2d configuration")
        levels = min(n_stages, max_levels)
        if levels < 2:
            raise ValueError(f"RIU-Net needs at least two levels (a block and the bottleneck), got {levels}")
        features = per_stage(features_per_stage, n_stages)[:levels]
        pools = [tuple(s) if not isinstance(s, int) else (s, s) for s in per_stage(strides, n_stages)[:levels]]
        if authors_norm:
            norm = dict(norm_op=nn.BatchNorm2d, norm_op_kwargs=None, nonlin=nn.ReLU, nonlin_kwargs=None)
        else:
            norm = dict(norm_op=norm_op or nn.Identity, norm_op_kwargs=norm_op_kwargs if norm_op else None,
                        nonlin=nonlin or nn.Identity, nonlin_kwargs=nonlin_kwargs if nonlin else None)
        self.levels, self.features, self.pools = levels, features, pools

        def block(c_in: int, c_out: int) -> InceptionResidualBlock:
            return InceptionResidualBlock(c_in, c_out, **norm)

        stem = [nn.Conv2d(input_channels, features[0], 3, padding=1),
                norm["norm_op"](features[0], **(norm["norm_op_kwargs"] or {})),
                norm["nonlin"](**(norm["nonlin_kwargs"] or {}))]
        self.encoder = nn.ModuleList([nn.Sequential(*stem, block(features[0], features[0]))])
        for level in range(1, levels):
            body = block(features[level - 1], features[level]) if level < levels - 1 else \
                double_conv(features[level - 1], features[level], **norm)
            self.encoder.append(nn.Sequential(nn.MaxPool2d(pools[level], pools[level]), body))
        self.decoder = StageDecoder(features, pools, [(3, 3)] * levels, [1] * (levels - 1), num_classes,
                                    deep_supervision, conv_bias=True,
                                    build_stage=lambda n, c_in, c_out, kernel: block(c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        return self.decoder(skips)
