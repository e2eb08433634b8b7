"""StageDecoder: a 2D U-Net decoder whose stages are built by a given function (transposed-convolution upsampling,
concatenation with the skip, a stage, a 1x1 segmentation layer per stage)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

# (n_blocks, in_channels, out_channels, kernel_size) -> the stage
StageBuilder = Callable[[int, int, int, Sequence[int]], nn.Module]


class StageDecoder(nn.Module):
    """From the bottleneck up: for each level a transposed convolution (kernel = stride of the stage below) to the
    skip's channels, concatenation with the skip, ``build_stage(n_blocks, 2 * skip, skip, kernel)``, and a 1x1
    segmentation layer. Output: the last stage's logits, or with ``deep_supervision`` one per stage, highest
    resolution first (nnU-Net's order)."""

    def __init__(self, features: Sequence[int], strides: Sequence, kernel_sizes: Sequence, n_blocks: Sequence[int],
                 num_classes: int, deep_supervision: bool, build_stage: StageBuilder, conv_bias: bool = True):
        super().__init__()
        self.deep_supervision = deep_supervision
        self.upsampling, self.stages, self.seg_layers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for s in range(1, len(features)):
            below, skip = features[-s], features[-(s + 1)]
            self.upsampling.append(nn.ConvTranspose2d(below, skip, strides[-s], strides[-s], bias=conv_bias))
            self.stages.append(build_stage(n_blocks[s - 1], 2 * skip, skip, kernel_sizes[-(s + 1)]))
            self.seg_layers.append(nn.Conv2d(skip, num_classes, 1))

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        x, outputs = skips[-1], []
        for s, (up, stage, seg) in enumerate(zip(self.upsampling, self.stages, self.seg_layers)):
            x = stage(torch.cat([up(x), skips[-(s + 2)]], dim=1))
            if self.deep_supervision or s == len(self.stages) - 1:
                outputs.append(seg(x))
        return outputs[::-1] if self.deep_supervision else outputs[-1]
