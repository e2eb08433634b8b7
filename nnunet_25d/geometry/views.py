"""Views: which axis of the preprocessed (z, y, x) array a 2.5D model takes its slabs along.

nnU-Net transposes every case so that the axis with the coarsest spacing comes first (``transpose_forward``); for
the usual axially acquired CT/MRI that is the slice axis. ``axial`` slabs run along axis 0 (the model sees the
high-resolution y-x plane), ``coronal`` along axis 1 (z-x plane) and ``sagittal`` along axis 2 (z-y plane).
"""
from __future__ import annotations

VIEW_AXES = {"axial": 0, "coronal": 1, "sagittal": 2}


def slab_axis_of(view: str) -> int:
    if view not in VIEW_AXES:
        raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEW_AXES)}")
    return VIEW_AXES[view]


def plane_axes(slab_axis: int) -> tuple[int, int]:
    """The two spatial axes (in increasing order) that span the plane a view's 2D network sees."""
    return tuple(a for a in range(3) if a != slab_axis)  # type: ignore[return-value]


def to_view(slab_axis: int) -> tuple[int, int, int]:
    """Permutation of the spatial axes that puts the slab axis first: (slab axis, *plane axes)."""
    return (slab_axis, *plane_axes(slab_axis))


def from_view(slab_axis: int) -> tuple[int, int, int]:
    """Inverse of :func:`to_view`."""
    forward = to_view(slab_axis)
    return tuple(forward.index(axis) for axis in range(3))  # type: ignore[return-value]


def permute_spatial(tensor, permutation: tuple[int, int, int]):
    """Permute the last three (spatial) axes of a (..., X, Y, Z) tensor."""
    lead = tensor.ndim - 3
    return tensor.permute(*range(lead), *(lead + p for p in permutation))
