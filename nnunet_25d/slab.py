"""Slab geometry: which slices a 2.5D model sees for each predicted slice."""
from __future__ import annotations

from dataclasses import dataclass


class SlabSizeError(ValueError):
    """A slab size that cannot centre on a slice."""


def check_slab_size(slab_size: int) -> int:
    """Return ``slab_size`` if it is a positive odd integer, else raise :class:`SlabSizeError`."""
    if isinstance(slab_size, bool) or not isinstance(slab_size, int):
        raise SlabSizeError(f"slab size must be an int, got {slab_size!r}")
    if slab_size < 1 or slab_size % 2 == 0:
        raise SlabSizeError(
            f"slab size {slab_size} is invalid: it must be a positive odd number (1, 3, 5, 7, ...) so that "
            f"slice z sees the same number of neighbours on each side; use 3, 5 or 7 (trainers "
            f"nnUNetTrainer25D_3slices, _5slices, _7slices)"
        )
    return slab_size


@dataclass(frozen=True)
class SlabGeometry:
    """Slice z sees slices z-k .. z+k, with k = slab_size // 2; missing neighbours repeat the edge slice."""

    slab_size: int

    def __post_init__(self) -> None:
        check_slab_size(self.slab_size)

    @property
    def half_width(self) -> int:
        return self.slab_size // 2

    def neighbours(self, z: int, depth: int) -> list[int]:
        """Slice indices fed for slice ``z`` of a stack of ``depth`` slices (replicate padding)."""
        k = self.half_width
        return [min(max(z + offset, 0), depth - 1) for offset in range(-k, k + 1)]
