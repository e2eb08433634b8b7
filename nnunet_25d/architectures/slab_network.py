"""SlabNetwork: any 2D nnU-Net network applied slice by slice to a thin 3D patch, with neighbours as channels."""
from __future__ import annotations

import pydoc
from typing import Sequence

import torch
from torch import nn

from nnunet_25d.architectures.blocks.slab_stack import SlabAsChannels, SliceNeighbourhood, unstack_slices
from nnunet_25d.architectures.blocks.slice_output import SliceOutput, slice_logits_per_patch
from nnunet_25d.architectures.blocks.stock_tile import check_tile_fits, past_exact_range, warn_past_exact_range
from nnunet_25d.geometry.views import from_view, permute_spatial, to_view


def in_plane(per_stage: Sequence[Sequence[int]] | int, slab_axis: int = 0) -> list[list[int]] | int:
    """Drop the slab axis from 3D kernel sizes / strides; it must be 1 (a slab network never mixes slices
    after its input layer). 2D entries pass unchanged."""
    if isinstance(per_stage, int):
        return per_stage
    result = []
    for entry in per_stage:
        entry = list(entry)
        if len(entry) == 3:
            if entry[slab_axis] != 1:
                raise ValueError(f"slab networks need a size of 1 along the slab axis ({slab_axis}) in kernel "
                                 f"sizes/strides, got {entry}")
            entry = entry[:slab_axis] + entry[slab_axis + 1:]
        result.append(entry)
    return result


class SlabNetwork(nn.Module):
    """Input (B, C, D, H, W) -> output (B, K, D, H, W); a list of those (highest resolution first) with deep
    supervision.

    ``slab_axis`` (0, 1 or 2) is the spatial axis the slabs run along (see :mod:`nnunet_25d.geometry.views`); the
    description below is for the default 0, other axes are moved to the front and back.

    Slice z of the output is computed by the 2D network ``network_2d`` from slices z-k..z+k of the input
    (``slab_size`` = 2k+1), zero slices beyond the input's ends. The stem turns each slab (N, C, S, H, W) into 2D
    input: here by stacking the slices as ``slab_size * C`` channels; subclasses replace :meth:`build_stem`. Every
    other keyword argument is passed to ``network_2d``; 3D ``kernel_sizes``/``strides`` with a slice entry of 1
    (what the plans store so that nnU-Net's deep supervision keeps the slice axis) are reduced to 2D.

    Two modes. ``interior_only`` (training): only the D - 2k slices whose slab lies inside the patch are computed,
    the output is D - 2k deep. Otherwise (inference) every slice is computed, ``slices_per_forward`` slices per
    pass of the 2D network, and slices whose whole slab is zeros (nnU-Net's padding of a volume thinner than the
    patch) share one pass. That mode is what stock ``nnUNetv2_predict`` runs on the plans' deep tile: it warns once
    when a volume is past the tile's exact range and refuses a tile whose logits will not fit
    (:mod:`~nnunet_25d.architectures.blocks.stock_tile`); ``nnunet25d predict`` runs the interior mode instead.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        slab_size: int,
        network_2d: str = "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        deep_supervision: bool = False,
        slab_axis: int = 0,
        slices_per_forward: int | None = None,
        **network_2d_kwargs,
    ):
        super().__init__()
        self.slab_axis = slab_axis
        self.slices_per_forward = slices_per_forward
        self.interior_only = False
        self.num_classes = num_classes
        self._warned_past_exact_range = False
        self._tiles_checked: set[tuple[int, ...]] = set()
        network_class = pydoc.locate(network_2d)
        if network_class is None:
            raise ImportError(f"2D network class {network_2d!r} cannot be imported")
        for key in ("kernel_sizes", "strides"):
            if key in network_2d_kwargs:
                network_2d_kwargs[key] = in_plane(network_2d_kwargs[key], slab_axis)
        self.slab_size = slab_size
        self.neighbourhood = SliceNeighbourhood(slab_size)
        self.stem = self.build_stem(input_channels, slab_size)
        self.network_2d = self.build_network_2d(network_class, self.stem.out_channels, num_classes,
                                                deep_supervision, **network_2d_kwargs)

    def build_stem(self, input_channels: int, slab_size: int) -> nn.Module:
        """Module (N, C, S, H, W) -> what the 2D network takes, with an ``out_channels`` attribute."""
        return SlabAsChannels(input_channels, slab_size)

    def build_network_2d(self, network_class: type[nn.Module], input_channels: int, num_classes: int,
                         deep_supervision: bool, **kwargs) -> nn.Module:
        """The network that maps the stem's output to one slice's logits (N, K, H, W)."""
        return network_class(input_channels=input_channels, num_classes=num_classes,
                             deep_supervision=deep_supervision, **kwargs)

    @property
    def decoder(self) -> nn.Module:
        """nnU-Net toggles ``network.decoder.deep_supervision``."""
        return self.network_2d.decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if x.ndim != 5:
            raise ValueError(f"SlabNetwork expects (B, C, D, H, W) patches, got shape {tuple(x.shape)}")
        x = permute_spatial(x, to_view(self.slab_axis))
        if self.interior_only:
            output = self.network_2d(self.stem(self.neighbourhood.interior(x)))
        else:
            output = self._every_slice(x)
        if isinstance(output, SliceOutput):  # a training output with slice-level logits (Ψ-Net)
            return SliceOutput(self._restore_all(output.segmentation, x.shape[0]),
                               slice_logits_per_patch(output.slice_logits, x.shape[0]))
        return self._restore_all(output, x.shape[0])

    def _restore_all(self, output: torch.Tensor | list[torch.Tensor], batch_size: int):
        if isinstance(output, (list, tuple)):
            return [self._restore(o, batch_size) for o in output]
        return self._restore(output, batch_size)

    def _every_slice(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Per-slice outputs (B*D, K, H, W) (a list with deep supervision) of every slice of ``x``."""
        self._guard_stock_tile(x)
        windows = self.neighbourhood.windows(x)
        has_data = self.neighbourhood.slabs_with_data(x).flatten()
        rows = has_data.nonzero().flatten()
        chunk = self.slices_per_forward or max(1, len(rows))
        pieces = [self.network_2d(self.stem(self.neighbourhood.gather(windows, rows[i:i + chunk])))
                  for i in range(0, len(rows), chunk)]
        empty = (~has_data).nonzero().flatten()
        if len(empty):
            zero_slab = x.new_zeros((1, x.shape[1], self.slab_size, *x.shape[3:]))
            pieces.append(self.network_2d(self.stem(zero_slab)))
        order = torch.cat([rows, empty]).argsort()
        if isinstance(pieces[0], (list, tuple)):
            return [self._assemble(level, order, len(empty)) for level in zip(*pieces)]
        return self._assemble(pieces, order, len(empty))

    def _guard_stock_tile(self, x: torch.Tensor) -> None:
        """Before computing a whole (view-layout) tile: its memory, once per tile shape; the exact range, warned
        once per network."""
        if tuple(x.shape) not in self._tiles_checked:
            check_tile_fits(self.num_classes, tuple(x.shape[2:]), x.device)
            self._tiles_checked.add(tuple(x.shape))
        if not self._warned_past_exact_range and past_exact_range(self.neighbourhood.slices_with_data(x)):
            self._warned_past_exact_range = True
            warn_past_exact_range(x.shape[2])

    @staticmethod
    def _assemble(pieces: list[torch.Tensor] | tuple[torch.Tensor, ...], order: torch.Tensor,
                  n_empty: int) -> torch.Tensor:
        """Per-slice outputs of the slices with data, then the all-zero slab's (repeated ``n_empty`` times), put back
        into slice order."""
        if n_empty:
            pieces = [*pieces[:-1], pieces[-1].expand(n_empty, *pieces[-1].shape[1:])]
        return torch.cat(list(pieces))[order]

    def _restore(self, slices: torch.Tensor, batch_size: int) -> torch.Tensor:
        return permute_spatial(unstack_slices(slices, batch_size), from_view(self.slab_axis))

    def initialize(self, module: nn.Module) -> None:
        """Called by nnU-Net through ``network.apply(network.initialize)``: the 2D network's own init."""
        init = getattr(self.network_2d, "initialize", None)
        if init is not None:
            init(module)
