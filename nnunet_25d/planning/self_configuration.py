"""What ``nnUNetTrainer25D`` chooses for itself from nnU-Net's fingerprint and plans, as nnU-Net does for its own
configurations: the slab size and which preprocessed data it trains on.

- **Slab size**: enough slices to see :data:`CONTEXT_MM` millimetres on either side of a slice at the slice
  spacing it trains on, odd, bounded to :data:`SLAB_SIZE_BOUNDS` (4 mm slices: 3; 2 mm: 5; 1 mm: 7).
- **Data**: nnU-Net's ``2d`` data keep each case's own slice spacing, so on a dataset of mixed thickness a slab
  spans different millimetres from case to case. Where the cases' slice spacings spread by more than
  :data:`MIXED_THICKNESS_RATIO` (90th / 10th percentile), the slab model trains on ``3d_fullres``'s data instead
  (the same in-plane grid, slices resampled to the median spacing) and prediction resamples back.
- **Near-isotropic data** (median slice spacing under :data:`ANISOTROPY_FOR_2_5D` x in-plane, MONAI Auto3DSeg's
  threshold for running its 2D model at all): 2.5D is not expected to beat ``3d_fullres``; the choice says so.

Fixed variants stay available by name (``nnUNetTrainer25D_5slices``: 5 slices on the ``2d`` data;
``nnUNetTrainer25DResampled``: 3 slices on ``3d_fullres`` data).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CONTEXT_MM = 4.0
SLAB_SIZE_BOUNDS = (3, 7)
MIXED_THICKNESS_RATIO = 1.5
ANISOTROPY_FOR_2_5D = 3.0
RESAMPLED_DATA = "3d_fullres"


@dataclass(frozen=True)
class SlabChoice:
    """The self-configured slab size and data, with the numbers they were chosen from."""

    slab_size: int
    data_configuration: str | None  # None: the configuration's own (2d) data
    slice_spacing_mm: float  # the spacing the slabs see (after resampling, if any)
    thickness_ratio: float | None  # 90th / 10th percentile of the cases' slice spacings; None: unknown
    anisotropy: float  # median slice spacing / finest in-plane spacing
    data_reason: str

    @property
    def near_isotropic(self) -> bool:
        return self.anisotropy < ANISOTROPY_FOR_2_5D

    def reasons(self) -> list[str]:
        context = (self.slab_size // 2) * self.slice_spacing_mm
        lines = [f"slab {self.slab_size} slices: {CONTEXT_MM:g} mm of context either side at "
                 f"{self.slice_spacing_mm:.3g} mm slices, bounded {SLAB_SIZE_BOUNDS[0]}..{SLAB_SIZE_BOUNDS[1]} "
                 f"(sees +-{context:.3g} mm)",
                 f"data {self.data_configuration or '2d'}: {self.data_reason}"]
        if self.near_isotropic:
            lines.append(f"slices only {self.anisotropy:.2g}x the in-plane spacing (< {ANISOTROPY_FOR_2_5D:g}x, MONAI "
                         f"Auto3DSeg's threshold for a 2D model): 2.5D is not expected to beat 3d_fullres here")
        return lines

    @classmethod
    def from_plans_entry(cls, entry: dict) -> "SlabChoice":
        return cls(**{key: entry[key] for key in cls.__dataclass_fields__})

    def as_plans_entry(self) -> dict:
        """JSON-ready record for the plans (rounded, so re-deriving gives the same marker)."""
        entry = asdict(self)
        for key in ("slice_spacing_mm", "thickness_ratio", "anisotropy"):
            if entry[key] is not None:
                entry[key] = round(float(entry[key]), 4)
        entry["rule"] = (f"context {CONTEXT_MM:g} mm, slabs {SLAB_SIZE_BOUNDS}, resample z above a thickness ratio "
                         f"of {MIXED_THICKNESS_RATIO:g}")
        return entry


def slab_size_for(slice_spacing_mm: float) -> int:
    """The odd slab whose half-width covers about :data:`CONTEXT_MM`, bounded to :data:`SLAB_SIZE_BOUNDS`."""
    half = int(np.floor(CONTEXT_MM / slice_spacing_mm + 0.5))
    low, high = SLAB_SIZE_BOUNDS
    return int(min(max(1 + 2 * half, low), high))


def case_slice_spacings(fingerprint: dict, plans: dict) -> list[float]:
    """Every training case's spacing along the axis nnU-Net's 2d slices (``transpose_forward``'s first)."""
    axis = plans.get("transpose_forward", [0, 1, 2])[0]
    return [float(spacing[axis]) for spacing in fingerprint.get("spacings", [])]


def thickness_ratio(spacings: list[float]) -> float | None:
    """90th / 10th percentile of the slice spacings (robust to a few odd cases); None without spacings."""
    if not spacings:
        return None
    low, high = np.percentile(spacings, [10, 90])
    return float(high / low)


def _resampled_data_problem(plans: dict, configuration: str) -> str | None:
    """Why ``3d_fullres``'s data cannot serve the 2d network (None when they can)."""
    configurations = plans.get("configurations", {})
    if RESAMPLED_DATA not in configurations:
        return f"the plans have no {RESAMPLED_DATA} configuration"
    own = configurations.get(configuration, {}).get("spacing")
    other = configurations[RESAMPLED_DATA].get("spacing")
    if own is None or other is None or list(other[1:]) != list(own):
        return f"{RESAMPLED_DATA} resamples in-plane to {other and other[1:]}, the 2d plan to {own}"
    return None


def choose_slab(plans: dict, configuration: str, fingerprint: dict | None) -> SlabChoice | None:
    """The self-configured slab for ``configuration`` (a 2d one) of ``plans``, from nnU-Net's fingerprint; None for
    plans without nnU-Net's median spacing (nothing to choose from)."""
    if "original_median_spacing_after_transp" not in plans:
        return None
    median = list(plans["original_median_spacing_after_transp"])
    anisotropy = float(median[0] / min(median[1:]))
    ratio = thickness_ratio(case_slice_spacings(fingerprint or {}, plans))
    data, spacing = None, float(median[0])
    if ratio is None:
        reason = "no dataset_fingerprint.json to compare the cases' slice spacings"
    elif ratio <= MIXED_THICKNESS_RATIO:
        reason = f"the cases' slice spacings agree (90th/10th percentile {ratio:.2f} <= {MIXED_THICKNESS_RATIO:g})"
    else:
        problem = _resampled_data_problem(plans, configuration)
        if problem:
            reason = f"mixed slice thickness (ratio {ratio:.2f}) but {problem}"
        else:
            data = RESAMPLED_DATA
            spacing = float(plans["configurations"][RESAMPLED_DATA]["spacing"][0])
            reason = (f"mixed slice thickness (90th/10th percentile {ratio:.2f} > {MIXED_THICKNESS_RATIO:g}): "
                      f"slices resampled to {spacing:.3g} mm so a slab spans the same millimetres in every case")
    return SlabChoice(slab_size_for(spacing), data, spacing, ratio, anisotropy, reason)


def read_fingerprint(preprocessed_dataset_folder: Path | None) -> dict | None:
    """nnU-Net's ``dataset_fingerprint.json`` of a preprocessed dataset folder; None where there is none."""
    if preprocessed_dataset_folder is None:
        return None
    path = Path(preprocessed_dataset_folder) / "dataset_fingerprint.json"
    return json.loads(path.read_text()) if path.is_file() else None


def dataset_choice(preprocessed_dataset_folder: Path, plans_name: str = "nnUNetPlans") -> SlabChoice | None:
    """What ``nnUNetTrainer25D`` would choose on a preprocessed dataset (None without its plans or a 2d plan)."""
    plans_file = Path(preprocessed_dataset_folder) / f"{plans_name}.json"
    if not plans_file.is_file():
        return None
    plans = json.loads(plans_file.read_text())
    if "2d" not in plans.get("configurations", {}):
        return None
    return choose_slab(plans, "2d", read_fingerprint(preprocessed_dataset_folder))


def benchmark_lines(choice: SlabChoice | None) -> list[str]:
    """The benchmark's sentences on the self-configuration of this dataset (empty without a choice)."""
    if choice is None:
        return []
    lines = [f"nnUNetTrainer25D configures itself here: {'; '.join(choice.reasons())}"]
    if choice.near_isotropic:
        lines.append("On near-isotropic data nnU-Net's 3d_fullres is the model to beat; the 2.5D rows show what "
                     "slices cost or gain there.")
    return lines
