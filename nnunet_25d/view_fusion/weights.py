"""Per-model, per-class fusion weights and the weighted mean they define."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class FusionWeights:
    """``weights[m, k]``: the share of model ``m`` in class ``k``'s fused probability; every column sums to 1.

    Fused probability of class k: ``sum_m weights[m, k] * p_m[k]`` (a weighted mean per class; equal weights are
    nnU-Net's softmax averaging).
    """

    models: tuple[str, ...]
    weights: np.ndarray  # (models, classes)

    def __post_init__(self) -> None:
        if self.weights.shape[0] != len(self.models):
            raise ValueError(f"{self.weights.shape[0]} weight rows for {len(self.models)} models")
        if not np.allclose(self.weights.sum(axis=0), 1.0, atol=1e-6) or (self.weights < 0).any():
            raise ValueError("fusion weights must be non-negative and sum to 1 over the models of each class")

    @classmethod
    def averaging(cls, models: Sequence[str], n_classes: int) -> "FusionWeights":
        return cls(tuple(models), np.full((len(models), n_classes), 1.0 / len(models)))

    def fuse(self, probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """Fuse one case: ``probabilities[m]`` is model m's (classes, *spatial) array."""
        if len(probabilities) != len(self.models):
            raise ValueError(f"{len(probabilities)} probability maps for {len(self.models)} models")
        fused = np.zeros(probabilities[0].shape, dtype=np.float32)
        for model_weights, p in zip(self.weights, probabilities):
            fused += model_weights.reshape(-1, *[1] * (p.ndim - 1)).astype(np.float32) * p
        return fused

    def to_json(self, path: Path, **extra) -> None:
        path.write_text(json.dumps({"models": list(self.models), "weights": self.weights.round(6).tolist(), **extra},
                                   indent=2))

    @classmethod
    def from_json(cls, path: Path) -> "FusionWeights":
        data = json.loads(Path(path).read_text())
        return cls(tuple(data["models"]), np.asarray(data["weights"], dtype=np.float64))
