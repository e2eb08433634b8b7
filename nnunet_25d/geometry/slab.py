"""Slab geometry: which slices a 2.5D model sees for each predicted slice, and how many a training step holds."""
from __future__ import annotations

from dataclasses import dataclass

from nnunet_25d.errors import SetupError


class SlabSizeError(SetupError):
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
    """Slice z sees slices z-k .. z+k, with k = slab_size // 2. Beyond a volume's ends the neighbours are zero
    slices, as nnU-Net's loader and predictor pad volumes with zeros."""

    slab_size: int

    def __post_init__(self) -> None:
        check_slab_size(self.slab_size)

    @property
    def half_width(self) -> int:
        return self.slab_size // 2

    def neighbours(self, z: int, depth: int) -> list[int | None]:
        """Slice indices fed for slice ``z`` of a volume of ``depth`` slices; None is a zero slice."""
        k = self.half_width
        return [z + offset if 0 <= z + offset < depth else None for offset in range(-k, k + 1)]


# nnU-Net forces sample i of a batch of B to foreground iff i >= round(B * (1 - 0.33)): with 3 patches one is
# forced, the third of a batch that its 2d configuration forces
MIN_PATCHES_PER_BATCH = 3
FOREGROUND_OVERSAMPLING = 0.33


def forced_foreground_patches(batch_size: int, oversampling: float = FOREGROUND_OVERSAMPLING) -> int:
    """How many of ``batch_size`` patches nnU-Net's loader centres on a foreground voxel."""
    return batch_size - round(batch_size * (1 - oversampling))


@dataclass(frozen=True)
class SlabBatch:
    """A training step of ``patches`` thin patches, each ``supervised_slices`` slices with full context plus the
    ``slab_size // 2`` context slices at either end that only feed the slabs."""

    patches: int
    supervised_slices: int
    slab_size: int

    @property
    def patch_depth(self) -> int:
        return self.supervised_slices + 2 * (self.slab_size // 2)

    @property
    def slices_per_step(self) -> int:
        return self.patches * self.supervised_slices

    @property
    def forced_foreground_fraction(self) -> float:
        return forced_foreground_patches(self.patches) / self.patches


def slab_batch(batch_size_2d: int, slab_size: int, max_supervised_slices: int,
               min_patches: int = MIN_PATCHES_PER_BATCH, supervised_per_patch: int | None = None) -> SlabBatch:
    """The step that supervises about as many slices as nnU-Net's 2d batch, never more.

    ``supervised_per_patch`` given (e.g. 1): ``batch_size_2d // n`` patches of n supervised slices each, so that
    nearly every supervised slice is its own random draw as in nnU-Net's 2d batch, and nnU-Net's foreground
    oversampling forces a third of the supervised slices themselves (per patch = per slice when n = 1); n shrinks
    where fewer than ``min_patches`` patches would remain.

    None (the deep design): among the splits ``patches x slices <= batch_size_2d`` with at least ``min_patches``
    patches (fewer only when the 2d batch itself is smaller; pass the number of GPUs if it is larger), take the one
    supervising the most slices, then one that nnU-Net forces at least a third of to foreground, then the fewest,
    deepest patches (less context loaded per supervised slice). ``max_supervised_slices`` (the median depth)
    bounds the depth either way.
    """
    check_slab_size(slab_size)
    floor = max(1, min(batch_size_2d, min_patches))
    if supervised_per_patch is not None:
        per_patch = max(1, min(supervised_per_patch, max_supervised_slices, batch_size_2d // floor))
        return SlabBatch(batch_size_2d // per_patch, per_patch, slab_size)
    splits = [SlabBatch(batch_size_2d // n, n, slab_size)
              for n in range(1, max(1, min(max_supervised_slices, batch_size_2d // floor)) + 1)]
    return max(splits, key=lambda s: (s.slices_per_step, s.forced_foreground_fraction >= 1 / 3, s.supervised_slices))
