"""How well Mei et al.'s image-placed fields of view hold unseen targets: on the CT body phantom, for each of
nnU-Net's 5 folds, the fractions are learned from the fold's training cases (as ``make-roi-dataset --fold F``) and
placed on its validation cases from their images alone. Per scale: the share of validation cases whose whole target
lies inside the field of view, the share of target voxels inside, and the crop's size against the whole volume and
against the oracle crop (the label's box grown by the ``--roi-from-label`` margins). No training: placement only.

    python benchmarks/mei_roi_placement.py --out benchmarks/results/mei_roi_placement.md [--cases 20] [--seeds 0 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_25d.roi.body import BODY_DILATION_MM, BODY_EROSION_MM
from nnunet_25d.roi.crop import ROI_SCALES, Box, foreground_box, roi_box
from nnunet_25d.roi.dataset import body_of, case_names, learned_fractions, learning_cases
from nnunet_25d.roi.phantom import write_body_phantom_dataset
from nnunet_25d.roi.placement import SCALES, place

BODY = {"modality": "CT", "threshold": None, "erosion_mm": BODY_EROSION_MM, "dilation_mm": BODY_DILATION_MM}


def inside(box: Box, labels: np.ndarray) -> tuple[bool, float]:
    """(whole target inside, share of target voxels inside)."""
    mask = np.zeros(labels.shape, bool)
    mask[box.slices()] = True
    target = labels > 0
    held = float((target & mask).sum() / max(target.sum(), 1))
    return held == 1.0, held


def evaluate(source: Path) -> list[dict]:
    cases = case_names(source / "imagesTr", ".nii.gz")
    bodies, shapes = {}, {}
    for case in cases:
        bodies[case], shapes[case] = body_of(source / "imagesTr" / f"{case}_0000.nii.gz", BODY)
    rows = []
    for fold in range(5):
        training = learning_cases(cases, fold)
        fractions = learned_fractions(source, training, ".nii.gz", bodies)
        for case in sorted(set(cases) - set(training)):
            labels_image = sitk.ReadImage(str(source / "labelsTr" / f"{case}.nii.gz"))
            labels = sitk.GetArrayFromImage(labels_image)
            spacing = tuple(labels_image.GetSpacing()[::-1])
            for scale in SCALES:
                box = place(fractions[scale], bodies[case], shapes[case])
                oracle = roi_box(foreground_box(labels), labels.shape, spacing, ROI_SCALES[scale])
                whole, share = inside(box, labels)
                rows.append({"fold": fold, "case": case, "scale": scale, "whole": whole, "share": share,
                             "of_volume": np.prod(box.shape) / labels.size,
                             "vs_oracle": np.prod(box.shape) / np.prod(oracle.shape)})
    return rows


def table(rows_by_seed: dict[int, list[dict]]) -> str:
    lines = ["| phantom seed | scale | validation cases | whole target inside | target voxels inside | crop / volume | "
             "crop / oracle crop |", "|---|---|---|---|---|---|---|"]
    for seed, rows in rows_by_seed.items():
        for scale in SCALES:
            mine = [r for r in rows if r["scale"] == scale]
            lines.append(f"| {seed} | {scale} | {len(mine)} | {np.mean([r['whole'] for r in mine]):.0%} | "
                         f"{np.mean([r['share'] for r in mine]):.1%} (min {min(r['share'] for r in mine):.1%}) | "
                         f"{np.mean([r['of_volume'] for r in mine]):.2f} | "
                         f"{np.mean([r['vs_oracle'] for r in mine]):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = time.time()
    rows_by_seed = {}
    with tempfile.TemporaryDirectory() as raw:
        for seed in args.seeds:
            source = write_body_phantom_dataset(raw, 590 + seed, n_train=args.cases, shape=(20, 96, 96), seed=seed)
            rows_by_seed[seed] = evaluate(source)
    text = (f"# Mei et al.'s fields of view placed from the image: how often they hold unseen targets\n\n"
            f"`python benchmarks/mei_roi_placement.py --cases {args.cases} --seeds {' '.join(map(str, args.seeds))}`"
            f" ({time.time() - started:.0f} s). CT body phantom (`nnunet_25d.roi.phantom`), {args.cases} cases of "
            f"20 x 96 x 96 at 4 x 1 x 1 mm per phantom seed. For each of nnU-Net's 5 folds the fractions are learned "
            f"from the fold's training cases and placed on its validation cases from their images (body mask: "
            f"-600 HU, erosion {BODY_EROSION_MM:g} mm, dilation {BODY_DILATION_MM:g} mm, largest component, holes "
            f"filled). Oracle crop: the label's box grown by `--roi-from-label`'s margins of the same scale.\n\n"
            f"{table(rows_by_seed)}\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
