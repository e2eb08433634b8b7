"""Fields of view as fractions of the body's bounding box, learned from training cases, placed on any image.

Mei et al. place their small, middle and large fields of view at fixed fractions of the body box (tuned to the
head and neck). Here the fractions are learned from the training cases of a dataset: a case's target box, measured
in its body box (0 at the box's first voxel, 1 past its last, per axis z, y, x), gives a (low, high) pair; the
**small** field of view is the smallest body-relative box holding every training case's target, the **large** one
the whole body box (or more, where a target reaches outside it), the **middle** one half-way between the two. A
field of view is then placed on an image from its body box alone: no label is needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnunet_25d.roi.crop import Box

SCALES = ("small", "middle", "large")


class NoTargetError(ValueError):
    """No training case holds a target to learn the fields of view from."""


@dataclass(frozen=True)
class Fractions:
    """A box relative to the body box: per axis (z, y, x) where it starts and stops, in units of the body box's
    extent from its start."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def as_json(self) -> dict:
        return {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_json(cls, data: dict) -> "Fractions":
        return cls(tuple(float(v) for v in data["low"]), tuple(float(v) for v in data["high"]))  # type: ignore


def relative(box: Box, body: Box) -> Fractions:
    """``box`` in fractions of ``body``."""
    extent = [max(b - a, 1) for a, b in zip(body.start, body.stop)]
    low = tuple((s - a) / e for s, a, e in zip(box.start, body.start, extent))
    high = tuple((s - a) / e for s, a, e in zip(box.stop, body.start, extent))
    return Fractions(low, high)  # type: ignore[arg-type]


def learn_fields_of_view(pairs: list[tuple[Box, Box | None]]) -> dict[str, Fractions]:
    """{small, middle, large: fractions} from (body box, target box or None) of each training case; cases without
    a target are skipped."""
    measured = [relative(target, body) for body, target in pairs if target is not None]
    if not measured:
        raise NoTargetError("no training case holds a labelled target: the fields of view cannot be learned")
    small = Fractions(tuple(np.min([m.low for m in measured], axis=0).tolist()),  # type: ignore[arg-type]
                      tuple(np.max([m.high for m in measured], axis=0).tolist()))
    large = Fractions(tuple(min(v, 0.0) for v in small.low), tuple(max(v, 1.0) for v in small.high))  # type: ignore
    middle = Fractions(tuple((a + b) / 2 for a, b in zip(small.low, large.low)),  # type: ignore[arg-type]
                       tuple((a + b) / 2 for a, b in zip(small.high, large.high)))
    return {"small": small, "middle": middle, "large": large}


def place(fractions: Fractions, body: Box, shape: tuple[int, int, int]) -> Box:
    """The voxel box at ``fractions`` of ``body`` (outward to whole voxels), clipped to ``shape``; at least one voxel
    per axis."""
    extent = [b - a for a, b in zip(body.start, body.stop)]
    start, stop = [], []
    for low, high, first, size, n in zip(fractions.low, fractions.high, body.start, extent, shape):
        a = min(max(0, math.floor(first + low * size + 1e-9)), n - 1)
        b = max(min(n, math.ceil(first + high * size - 1e-9)), a + 1)
        start.append(a)
        stop.append(b)
    return Box(tuple(start), tuple(stop))  # type: ignore[arg-type]
