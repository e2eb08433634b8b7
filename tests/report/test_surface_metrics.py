"""HD95 and normalised surface Dice (MONAI, in mm at the image's spacing) against values computed by hand (NSD
by edge voxels, MONAI's default: counted by hand), the area-weighted NSD of anisotropic grids, the absent-structure
rule, label images read like nnU-Net reads them, per-class tolerances and the score cache."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from tests.benchmark.benchmark_tree import write_image

from nnunet_25d.benchmark.surface import (CACHE_FILE, SurfaceScorer, image_diagonal_mm, scorer_for, surface_score,
                                          tolerances_per_class)

SPACING = (2.0, 0.5, 0.8)  # z, y, x in mm: thick slices, unequal in-plane spacing


def shifted_cubes(shift: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A 4-slice x 4 x 4 cube and the same cube ``shift`` slices higher, in a (10, 8, 8) image."""
    reference, prediction = np.zeros((10, 8, 8), bool), np.zeros((10, 8, 8), bool)
    reference[1:5, 2:6, 2:6] = True
    prediction[1 + shift:5 + shift, 2:6, 2:6] = True
    return reference, prediction


# By hand, for the cubes shifted by 2 slices. The edge voxels of a cube (voxels with a face neighbour outside) are
# its two 4x4 faces and the 12-voxel rings of its two middle slices: 56. From the reference's edge voxels to the
# nearest edge voxel of the prediction (z = 0..3 within the cube; the prediction covers z = 2..5):
#   bottom face z=0: 16 voxels, 2 slices below the prediction's bottom face: 2 x 2.0 mm = 4.0 mm
#   ring z=1:        12 voxels, 1 slice below it:                             2.0 mm
#   ring z=2:        12 voxels, on the prediction's side walls:               0
#   top face z=3:    its 12-voxel rim on the side walls:                      0
#                    its 4 inner voxels, one voxel from the side wall in y (0.5 mm; in x 0.8, in z 2.0): 0.5 mm
# The prediction's edge voxels see the mirror image: the same 56 distances. Sorted, 4.0 mm fills ranks 40-55, so
# the 95th percentile (rank 0.95 x 55 = 52.25) is 4.0 mm: HD95 = the shift in mm.
# NSD = edge voxels within the tolerance, of both, over all 112: 1 mm -> (24 + 4) x 2 = 56; 2.5 mm -> 80.
CUBE_DISTANCES = [4.0] * 16 + [2.0] * 12 + [0.0] * 24 + [0.5] * 4


def test_cubes_shifted_by_two_thick_slices():
    reference, prediction = shifted_cubes()
    assert len(CUBE_DISTANCES) == 56
    assert np.percentile(CUBE_DISTANCES, 95) == 4.0
    for tolerance, within in ((1.0, 56), (2.5, 80), (4.0, 112)):
        assert 2 * sum(d <= tolerance for d in CUBE_DISTANCES) == within
        score = surface_score(reference, prediction, SPACING, tolerance, area_weighted=False)
        assert score.hd95 == pytest.approx(4.0)
        assert score.nsd == pytest.approx(within / 112)
    # the spacing is read per array axis: with z and x swapped the shift would measure 2 x 0.8 mm
    assert surface_score(reference, prediction, SPACING[::-1], 1.0, area_weighted=False).hd95 == pytest.approx(1.6)


def test_hd95_ignores_a_one_voxel_speck_that_nsd_counts():
    reference, prediction = shifted_cubes()
    prediction[9, 7, 7] = True  # far from everything: 57 prediction edge voxels, the speck's distance the largest
    # rank 0.95 x 56 = 53.2 of the prediction's 57 distances still lies among the 4.0 mm ones
    score = surface_score(reference, prediction, SPACING, 2.5, area_weighted=False)
    assert score.hd95 == pytest.approx(4.0)
    assert score.nsd == pytest.approx(80 / 113)


def test_absent_structures_follow_the_dice_rule():
    empty = np.zeros((10, 8, 8), bool)
    cube = shifted_cubes()[0]
    both_empty = surface_score(empty, empty, SPACING, 1.0, area_weighted=False)
    assert math.isnan(both_empty.hd95) and math.isnan(both_empty.nsd)
    diagonal = math.sqrt((10 * 2.0) ** 2 + (8 * 0.5) ** 2 + (8 * 0.8) ** 2)  # 21.38 mm
    assert image_diagonal_mm((10, 8, 8), SPACING) == pytest.approx(diagonal)
    for reference, prediction in ((empty, cube), (cube, empty)):  # a false positive, a miss
        score = surface_score(reference, prediction, SPACING, 1.0, area_weighted=False)
        assert (score.hd95, score.nsd) == (pytest.approx(diagonal), 0.0)


def _dataset_json(**labels) -> dict:
    return {"labels": {"background": 0, **labels}, "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}


def test_label_images_are_read_with_their_spacing_per_class(tmp_path):
    reference, prediction = shifted_cubes()
    reference_image = reference.astype(np.uint8)
    prediction_image = prediction.astype(np.uint8)
    prediction_image[9, 7, 6:8] = 2  # "lesion" painted far from the organ, where the reference has none; no "cyst"
    write_image(reference_image, tmp_path / "ref" / "a.nii.gz", SPACING)
    write_image(prediction_image, tmp_path / "pred" / "a.nii.gz", SPACING)
    scorer = scorer_for(_dataset_json(organ=1, lesion=2, cyst=3), [1.0, 2.5, 1.0], area_weighted=False)
    scores = scorer.score(["a"], tmp_path / "pred", tmp_path / "ref")["a"]
    assert (scores["organ"].hd95, scores["organ"].nsd) == (pytest.approx(4.0), pytest.approx(56 / 112))
    assert (scores["lesion"].hd95, scores["lesion"].nsd) == (pytest.approx(image_diagonal_mm((10, 8, 8), SPACING)), 0)
    assert math.isnan(scores["cyst"].hd95) and math.isnan(scores["cyst"].nsd)
    # a region (nnU-Net's region-based labels) is the union of its labels
    region = scorer_for(_dataset_json(anything=[1, 2]), [2.5], area_weighted=False).score(
        ["a"], tmp_path / "pred", tmp_path / "ref")
    assert region["a"]["anything"].nsd == pytest.approx(80 / 114)  # 2 more edge voxels, > 2.5 mm from the organ


def test_a_one_slice_image_has_2d_surfaces(tmp_path):
    # 4x4 squares, the prediction 2 pixels further in x (0.8 mm), y at 0.5 mm. By hand, from the reference's
    # 12-pixel rim: rows y=0 and y=3 at x = 0, 1, 2, 3 -> 1.6, 0.8, 0, 0 mm; the left column's 2 inner pixels 1.6;
    # the right column's 2 (inside the prediction) 0.5 (its top/bottom rim, one row away). Mirror image the other
    # way. HD95: sorted 0 0 0 0 .5 .5 .8 .8 1.6 1.6 1.6 1.6, rank 0.95 x 11 = 10.45 -> 1.6 mm; NSD at 1 mm: 16/24.
    # Read as a 3D image with one slice, every pixel would be an edge voxel.
    reference, prediction = np.zeros((1, 8, 10), np.uint8), np.zeros((1, 8, 10), np.uint8)
    reference[0, 2:6, 1:5] = 1
    prediction[0, 2:6, 3:7] = 1
    write_image(reference, tmp_path / "ref" / "a.nii.gz", (3.0, 0.5, 0.8))
    write_image(prediction, tmp_path / "pred" / "a.nii.gz", (3.0, 0.5, 0.8))
    score = scorer_for(_dataset_json(organ=1), [1.0], area_weighted=False).score(
        ["a"], tmp_path / "pred", tmp_path / "ref")["a"]["organ"]
    assert (score.hd95, score.nsd) == (pytest.approx(1.6), pytest.approx(16 / 24))


def test_the_ignore_label_hides_predictions_like_nnunets_dice(tmp_path):
    reference, prediction = shifted_cubes()
    reference_image = reference.astype(np.uint8)
    reference_image[7:10] = 9  # ignore: unlabelled slices above the cube
    prediction_image = prediction.astype(np.uint8)
    prediction_image[8, 0, 0] = 1  # a speck in the ignored region
    write_image(reference_image, tmp_path / "ref" / "a.nii.gz", SPACING)
    write_image(prediction_image, tmp_path / "pred" / "a.nii.gz", SPACING)
    scorer = scorer_for(_dataset_json(organ=1, ignore=9), [2.5], area_weighted=False)
    assert list(scorer.labels) == ["organ"]
    score = scorer.score(["a"], tmp_path / "pred", tmp_path / "ref")["a"]["organ"]
    assert score.nsd == pytest.approx(80 / 112)  # as without the speck


def test_tolerances_one_for_all_or_one_per_class():
    assert tolerances_per_class(None, ["a", "b"]) == {"a": 1.0, "b": 1.0}
    assert tolerances_per_class([2.0], ["a", "b"]) == {"a": 2.0, "b": 2.0}
    assert tolerances_per_class([2.0, 0.5], ["a", "b"]) == {"a": 2.0, "b": 0.5}
    with pytest.raises(SystemExit, match="got 3 values for 2 classes"):
        tolerances_per_class([1, 2, 3], ["a", "b"])
    with pytest.raises(SystemExit, match=">= 0"):
        tolerances_per_class([-1], ["a"])


def test_scores_are_cached_until_a_file_or_the_tolerance_changes(tmp_path):
    reference, prediction = shifted_cubes()
    write_image(reference.astype(np.uint8), tmp_path / "ref" / "a.nii.gz", SPACING)
    write_image(prediction.astype(np.uint8), tmp_path / "pred" / "a.nii.gz", SPACING)
    scorer: SurfaceScorer = scorer_for(_dataset_json(organ=1), [1.0], area_weighted=False)
    assert scorer.score(["a"], tmp_path / "pred", tmp_path / "ref")["a"]["organ"].nsd == pytest.approx(0.5)
    cache_file = tmp_path / "pred" / CACHE_FILE
    cache = json.loads(cache_file.read_text())
    cache["cases"]["a"]["classes"]["organ"] = [99.0, 0.99]  # a marker: only a cache hit can return it
    cache_file.write_text(json.dumps(cache))
    assert scorer.score(["a"], tmp_path / "pred", tmp_path / "ref")["a"]["organ"].nsd == 0.99
    again = scorer_for(_dataset_json(organ=1), [2.5], area_weighted=False)
    assert again.score(["a"], tmp_path / "pred", tmp_path / "ref")["a"]["organ"].nsd == pytest.approx(80 / 112)  # new
    # tolerance: computed again
    cache_file.write_text(json.dumps(cache))
    stamp = (tmp_path / "pred" / "a.nii.gz").stat().st_mtime + 5
    os.utime(tmp_path / "pred" / "a.nii.gz", (stamp, stamp))  # a prediction written again
    assert scorer.score(["a"], tmp_path / "pred", tmp_path / "ref")["a"]["organ"].nsd == pytest.approx(0.5)


def test_a_missing_or_unreadable_file_is_one_clear_error(tmp_path):
    reference, _ = shifted_cubes()
    write_image(reference.astype(np.uint8), tmp_path / "ref" / "a.nii.gz", SPACING)
    scorer = scorer_for(_dataset_json(organ=1), [1.0], area_weighted=False)
    with pytest.raises(SystemExit, match="no prediction .*a.nii.gz for case a"):
        scorer.score(["a"], tmp_path / "pred", tmp_path / "ref")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "a.nii.gz").write_bytes(b"\x1f\x8b half-written")
    with pytest.raises(SystemExit, match="cannot read segmentation .*delete it and run the benchmark again"):
        scorer.score(["a"], tmp_path / "pred", tmp_path / "ref")


def _box_and_shifted(slice_mm: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """The same 24 x 20 x 20 mm box at ``slice_mm`` slices (1 mm in-plane), and the box moved 1 mm in y."""
    depth = int(40 / slice_mm)
    reference, prediction = np.zeros((depth, 40, 40), bool), np.zeros((depth, 40, 40), bool)
    top, bottom = int(8 / slice_mm), int(32 / slice_mm)
    reference[top:bottom, 10:30, 10:30] = True
    prediction[top:bottom, 11:31, 10:30] = True
    return reference, prediction, (slice_mm, 1.0, 1.0)


def test_area_weighted_nsd_does_not_move_with_the_slice_thickness():
    """The same two boxes at 1, 2 and 4 mm slices. By area (continuous): the faces facing the 1 mm move are out of
    a 0.5 mm tolerance, the other faces in except a 0.5 mm strip: (800 + 960) x 19.5 / 20 of 2720 mm² = 0.631.
    Counting edge voxels weighs the z faces by their voxel count and drifts with the slices."""
    area, edges = [], []
    for slice_mm in (1.0, 2.0, 4.0):
        reference, prediction, spacing = _box_and_shifted(slice_mm)
        area.append(surface_score(reference, prediction, spacing, 0.5).nsd)  # the default on anisotropic grids
        edges.append(surface_score(reference, prediction, spacing, 0.5, area_weighted=False).nsd)
    assert max(area) - min(area) < 0.03 and abs(area[0] - 0.631) < 0.02
    assert max(edges) - min(edges) > 0.15
    assert surface_score(*_box_and_shifted(1.0), 0.5).nsd == pytest.approx(edges[0])  # isotropic: MONAI's default


def test_the_cache_knows_which_nsd_it_holds(tmp_path):
    reference, prediction = shifted_cubes()
    for folder, mask in (("ref", reference), ("pred", prediction)):
        (tmp_path / folder).mkdir()
        write_image(mask.astype(np.uint8), tmp_path / folder / "a.nii.gz", SPACING)
    by_edges = scorer_for(_dataset_json(organ=1), [1.0], area_weighted=False)
    assert by_edges.score(["a"], tmp_path / "pred", tmp_path / "ref")["a"]["organ"].nsd == pytest.approx(0.5)
    by_area = scorer_for(_dataset_json(organ=1), [1.0]).score(["a"], tmp_path / "pred", tmp_path / "ref")
    expected = surface_score(reference, prediction, SPACING, 1.0, area_weighted=True).nsd
    assert by_area["a"]["organ"].nsd == pytest.approx(expected) != pytest.approx(0.5)  # computed again, by area
