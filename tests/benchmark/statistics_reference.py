"""References for the benchmark's statistics, written another way than the package computes them."""
from __future__ import annotations

import itertools

import numpy as np


def enumerated_sign_flip_p(differences: np.ndarray) -> float:
    """The share of all 2^n sign patterns of the paired differences whose |mean| reaches the observed one."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=differences.size)))
    flipped = np.abs((signs * differences).mean(axis=1))
    return float(np.mean(flipped >= abs(differences.mean()) * (1 - 1e-9)))
