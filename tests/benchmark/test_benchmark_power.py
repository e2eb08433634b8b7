"""The design's power, stated before training: the smallest attainable Holm p for n pairs and a family size, and
what would make significance reachable; the cases a benchmark's folds validate, as nnU-Net will split them."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from nnunetv2.utilities.crossval_split import generate_crossval_split

from nnunet_25d.benchmark.command import design_power, validation_case_count
from nnunet_25d.benchmark.matrix import Variant
from nnunet_25d.benchmark.power import Power, smallest_p
from nnunet_25d.benchmark.statistics import sign_flip_p


@pytest.mark.parametrize("n", [4, 6, 10, 30])
def test_smallest_p_is_what_the_test_gives_when_every_pair_agrees(n):
    ours, theirs = np.linspace(0.6, 0.9, n), np.linspace(0.1, 0.2, n)
    assert smallest_p(n) == pytest.approx(sign_flip_p(ours, theirs))


@pytest.mark.parametrize("n, family, reachable, smallest_adjusted", [
    (4, 4, False, 0.5), (4, 108, False, 1.0), (6, 4, False, 0.125), (6, 108, False, 1.0),
    (10, 4, True, 4 / 512), (10, 108, False, 108 / 512), (30, 4, True, 8e-5), (30, 108, True, 108 * 2e-5)])
def test_power_for_the_issue_s_designs(n, family, reachable, smallest_adjusted):
    power = Power(n, family)
    assert power.reachable is reachable
    assert power.smallest_adjusted_p == pytest.approx(smallest_adjusted)


def test_what_would_reach_significance():
    power = Power(4, 108)
    assert power.pairs_needed == 13  # 108 x 2 / 2^12 = 0.053 > 0.05; 2^13: 0.026
    assert 108 * 2 / 2 ** 12 > 0.05 >= 108 * 2 / 2 ** 13
    assert Power(13, 108).reachable and not Power(12, 108).reachable
    assert Power(6, 1).largest_family == 1  # 0.05 / (2 / 64) = 1.6
    assert Power(10, 1).largest_family == 25 and Power(10, 25).reachable and not Power(10, 26).reachable
    sentence = Power(4, 108).sentence("5-fold CV")
    assert sentence.startswith("Power (5-fold CV): 108 comparisons in the primary family, n ≤ 4 pairs each; "
                               "smallest attainable two-sided p 0.125, Holm-adjusted 1 > α = 0.05: this design "
                               "cannot reach significance whatever the results.")
    assert "≥ 13 cases, or ≤ 0 comparisons" in sentence
    assert Power(30, 4).sentence("test set").endswith("significance is reachable.")
    assert "fewer than 10 pairs are flagged" in Power(8, 1).sentence("test set")
    assert "flagged" not in Power(10, 1).sentence("test set")  # ten pairs: not flagged
    assert smallest_p(0) == 1.0 and Power(0, 4).smallest_adjusted_p == 1.0 and not Power(0, 4).reachable
    assert not Power(30, 0).reachable  # no comparison: nothing to reach


@pytest.mark.parametrize("cases", [5, 12, 23, 40])
def test_validation_cases_match_nnunets_own_split(tmp_path, cases):
    splits = generate_crossval_split([f"c{i:03d}" for i in range(cases)])
    for folds in ([0], [0, 1, 2], [0, 1, 2, 3, 4], [3, 4]):
        expected = sum(len(splits[f]["val"]) for f in folds)
        assert validation_case_count({"numTraining": cases}, folds, tmp_path / "missing.json") == expected
        (tmp_path / "splits_final.json").write_text(json.dumps(splits))
        assert validation_case_count({}, folds, tmp_path / "splits_final.json") == expected


def test_the_family_is_classes_times_variants_times_baselines(tmp_path):
    args = argparse.Namespace(primary_split="cv", folds=[0, 1, 2, 3, 4])
    dataset_json = {"labels": {"background": 0, "organ": 1, "lesion": 2}, "numTraining": 20}
    variants = [Variant("nnUNetTrainer", "2d"), Variant("nnUNetTrainer", "3d_fullres"),
                Variant("nnUNetTrainer25D", "2d"), Variant("nnUNetTrainer25DMorphMLP_N", "2d"),
                Variant("nnUNetTrainer25D_5slices", "2d")]
    power = design_power(args, dataset_json, variants, ["nnUNetTrainer:2d", "nnUNetTrainer:3d_fullres"],
                         tmp_path / "none.json", None)
    assert (power.family, power.n_pairs) == (2 * 3 * 2, 20)
