"""RIU-Net's block as its authors build it (lvpeiqing/RIU-Net, ``net/ince5.py``: residual inception).

Four branches of C/4 channels each, concatenated, plus a 1x1 convolution shortcut, then the non-linearity:

- b1: 1x1 conv, norm;
- b2: 1x1 conv, norm, act; 3x3 conv, norm;
- b3: 1x1 conv, norm, act; (3x3 conv, norm, act); 3x3 conv, norm;
- b4: 1x1 conv, norm, act; 2 x (3x3 conv, norm, act); 3x3 conv, norm.

Branch convolutions have no bias (a norm follows); each branch ends with its norm and no activation; the shortcut
is always a 1x1 convolution (no bias, no norm), also when C_in = C_out; no pooling branch. With q = C/4 the block
holds 2 C_in C + 54 q^2 + 20 q weights (2 C_in C + 3.375 C^2 + 5 C): the shortcut and the four 1x1 convolutions
C_in C each, six 3x3 convolutions 9 q^2 each, ten norms 2 q each.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_norm(in_channels: int, out_channels: int, kernel: int, norm_op, norm_op_kwargs: dict | None,
              nonlin=None, nonlin_kwargs: dict | None = None) -> list[nn.Module]:
    """kernel x kernel convolution ('same' padding, no bias) -> norm [-> non-linearity]."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
                               norm_op(out_channels, **(norm_op_kwargs or {}))]
    if nonlin is not None:
        layers.append(nonlin(**(nonlin_kwargs or {})))
    return layers


class InceptionResidualBlock(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, H, W): act(concat(b1, b2, b3, b4)(x) + conv1x1(x)) (module docstring).

    ``norm_op`` / ``nonlin``: the authors' BatchNorm2d and ReLU by default. ``out_channels`` must split into four.
    """

    n_branches = 4

    def __init__(self, in_channels: int, out_channels: int, norm_op: type[nn.Module] = nn.BatchNorm2d,
                 norm_op_kwargs: dict | None = None, nonlin: type[nn.Module] = nn.ReLU,
                 nonlin_kwargs: dict | None = None):
        super().__init__()
        if out_channels % self.n_branches:
            raise ValueError(f"RIU-Net's block splits its {out_channels} output channels into 4 equal branches: "
                             f"use a multiple of 4")
        width = out_channels // self.n_branches
        norm = dict(norm_op=norm_op, norm_op_kwargs=norm_op_kwargs)
        act = dict(nonlin=nonlin, nonlin_kwargs=nonlin_kwargs)

        def branch(n_3x3: int) -> nn.Sequential:
            if n_3x3 == 0:
                return nn.Sequential(*conv_norm(in_channels, width, 1, **norm))
            layers = conv_norm(in_channels, width, 1, **norm, **act)
            for i in range(n_3x3):
                layers += conv_norm(width, width, 3, **norm, **(act if i < n_3x3 - 1 else {}))
            return nn.Sequential(*layers)

        self.branches = nn.ModuleList(branch(n) for n in range(self.n_branches))
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.activation = nonlin(**(nonlin_kwargs or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(torch.cat([b(x) for b in self.branches], dim=1) + self.shortcut(x))


def double_conv(in_channels: int, out_channels: int, norm_op: type[nn.Module] = nn.BatchNorm2d,
                norm_op_kwargs: dict | None = None, nonlin: type[nn.Module] = nn.ReLU,
                nonlin_kwargs: dict | None = None) -> nn.Sequential:
    """RIU-Net's bottleneck ("bridge"): two (3x3 conv with bias, norm, act)."""
    layers: list[nn.Module] = []
    for c_in in (in_channels, out_channels):
        layers += [nn.Conv2d(c_in, out_channels, 3, padding=1), norm_op(out_channels, **(norm_op_kwargs or {})),
                   nonlin(**(nonlin_kwargs or {}))]
    return nn.Sequential(*layers)
