"""The benchmark's comparisons on hand-built results trees: no baseline picked after looking, false positives on
empty cases counted (in Dice, HD95 and NSD alike), n / CI / Holm reported per split, the test set's ensemble
predictions beside cross-validation, everything computed from the per-case CSV."""
from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from tests.benchmark.benchmark_tree import (ABSENT, FALSE_POSITIVE, SHAPE, SPACING, ensemble, gt_folder, job, make_test_set, present,
                            write_fold, write_splits, write_test_prediction)
from scipy.stats import bootstrap
from tests.benchmark.statistics_reference import enumerated_sign_flip_p
from statsmodels.stats.multitest import multipletests

from nnunet_25d.benchmark.collect import Scoring, read_cases_csv
from nnunet_25d.benchmark.command import summarise
from nnunet_25d.benchmark.report import write_report
from nnunet_25d.benchmark.statistics import (CaseScore, Comparison, bootstrap_ci, compare, hodges_lehmann, holm,
                                             mean_score, paired_scores, sign_flip_p)
from nnunet_25d.benchmark.surface import image_diagonal_mm

FOLDS = [[f"c{i:02d}" for i in range(6)], [f"c{i:02d}" for i in range(6, 12)]]
TEST_CASES = [f"t{i:02d}" for i in range(8)]
LESION_CASES = FOLDS[0] + TEST_CASES[:4]  # fold 1's six cases and half the test cases have no lesion
DIAGONAL = image_diagonal_mm(SHAPE, SPACING)  # the HD95 of a class painted into an empty case
BASELINES = ["nnUNetTrainer:2d", "nnUNetTrainer:3d_fullres"]
# per model: (organ Dice, lesion Dice where there is a lesion, lesion outcome on a lesion-free case)
MODELS = {
    ("nnUNetTrainer", "2d"): (0.80, 0.70, ABSENT),
    ("nnUNetTrainer", "3d_fullres"): (0.97, 0.58, ABSENT),  # the higher foreground mean: the old pick
    ("nnUNetTrainer25D", "2d"): (0.96, 0.64, ABSENT),
    ("nnUNetTrainer25DPainter", "2d"): (0.96, 0.64, FALSE_POSITIVE),  # paints lesions into the empty cases
}


def _cases(organ: float, lesion: float, on_empty: tuple, fold: int | None) -> dict:
    """A fold's validation cases, or with ``fold=None`` the test cases (a little better: an ensemble)."""
    cases, bonus = (FOLDS[fold], 0.0) if fold is not None else (TEST_CASES, 0.01)
    return {case: {"organ": present(organ + bonus + 0.003 * i),
                   "lesion": present(lesion + bonus + 0.004 * i) if case in LESION_CASES else on_empty}
            for i, case in enumerate(cases)}


def _key(c: Comparison) -> tuple:
    return c.split, c.metric, c.variant, c.baseline, c.class_name


def _module_scope_except_mutmut_stats(fixture_name: str, config: pytest.Config) -> str:
    """Built once per module, except while mutmut records which tests reach which function: it credits a module
    fixture's calls to the first test only, and would then test mutants in the statistics with that test alone."""
    return "function" if os.environ.get("MUTANT_UNDER_TEST") == "stats" else "module"


@pytest.fixture(scope=_module_scope_except_mutmut_stats)
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp_path = tmp_path_factory.mktemp("tree")
    splits = write_splits(tmp_path / "preprocessed" / "Dataset999_Toy", FOLDS)
    test_set, out = make_test_set(tmp_path, TEST_CASES), tmp_path / "report"
    jobs, predictions = [], []
    for (trainer, configuration), outcomes in MODELS.items():
        for fold in (0, 1):
            jobs.append(job(tmp_path, trainer, configuration, fold, splits))
            write_fold(jobs[-1], _cases(*outcomes, fold))
        predictions.append(ensemble(jobs[-2:], test_set, out))
        write_test_prediction(predictions[-1], _cases(*outcomes, None))
    variants = list(dict.fromkeys(j.variant for j in jobs))
    summaries, comparisons = summarise(jobs, variants, BASELINES, out, Scoring(gt_folder(jobs[0]), (2.0,)),
                                       predictions)
    return {"jobs": jobs, "summaries": {s.variant.key: s for s in summaries}, "out": out,
            "table": comparisons, "comparisons": {_key(c): c for c in comparisons}}


def _dice(comparisons: dict, variant: str, baseline: str, class_name: str, split: str = "cv") -> Comparison:
    return comparisons[(split, "dice", variant, baseline, class_name)]


def test_the_old_best_baseline_pick_hid_a_loss_that_the_full_table_shows(tree):
    summaries = tree["summaries"]
    foreground = {key: np.mean([summaries[key].dice[n][0] for n in ("organ", "lesion")]) for key in BASELINES}
    assert max(foreground, key=foreground.get) == "nnUNetTrainer:3d_fullres"  # the old rule's pick
    comparisons = tree["comparisons"]
    versus_3d = _dice(comparisons, "nnUNetTrainer25D:2d", "nnUNetTrainer:3d_fullres", "lesion")
    versus_2d = _dice(comparisons, "nnUNetTrainer25D:2d", "nnUNetTrainer:2d", "lesion")
    assert versus_3d.mean_difference == pytest.approx(0.06) and versus_3d.ci_low > 0
    assert versus_2d.mean_difference == pytest.approx(-0.06) and versus_2d.ci_high < 0
    # every non-baseline variant against every baseline, per split, metric and class; baselines are not compared
    # with each other
    assert set(comparisons) == {(split, m, v, b, n) for split in ("cv", "test") for m in ("dice", "hd95", "nsd")
                                for v in ("nnUNetTrainer25D:2d", "nnUNetTrainer25DPainter:2d")
                                for b in BASELINES for n in ("organ", "lesion")}


def _old_rule(variant: dict[str, CaseScore], baseline: dict[str, CaseScore]) -> list[float]:
    """The replaced rule: a pair is dropped when either side's nnU-Net Dice is NaN."""
    return [variant[c].dice - baseline[c].dice for c in sorted(variant.keys() & baseline.keys())
            if not (math.isnan(variant[c].dice) or math.isnan(baseline[c].dice))]


def test_false_positives_on_empty_cases_count_as_failures(tree):
    summaries, comparisons = tree["summaries"], tree["comparisons"]
    baseline = summaries["nnUNetTrainer:3d_fullres"].scores("lesion")
    clean, painter = (summaries[k].scores("lesion") for k in ("nnUNetTrainer25D:2d", "nnUNetTrainer25DPainter:2d"))
    assert _old_rule(clean, baseline) == _old_rule(painter, baseline)  # the defect: the painting was invisible
    clean_test = _dice(comparisons, "nnUNetTrainer25D:2d", "nnUNetTrainer:3d_fullres", "lesion")
    painter_test = _dice(comparisons, "nnUNetTrainer25DPainter:2d", "nnUNetTrainer:3d_fullres", "lesion")
    assert clean_test.n_pairs == 6  # the lesion-free cases: both correctly empty, left out
    assert painter_test.n_pairs == 12  # ... unless one side paints: it scores 0, the clean side 1
    assert painter_test.mean_difference == pytest.approx((6 * 0.06 - 6 * 1.0) / 12)
    ours, theirs = paired_scores(painter, baseline, "dice")[1:]
    assert painter_test.p_value == pytest.approx(enumerated_sign_flip_p(ours - theirs))
    # the Dice columns use the same rule: 0 for each painted empty case, fold 1's mean is 0, not n/a
    assert summaries["nnUNetTrainer25DPainter:2d"].fold_dice("lesion") == {0: pytest.approx(0.65), 1: 0.0}
    assert math.isnan(summaries["nnUNetTrainer25D:2d"].fold_dice("lesion")[1])


def test_the_rule_reads_voxel_counts_not_nan():
    # a Dice stored as NaN with a painted prediction is still a false positive
    assert CaseScore("v", 0, "c", "lesion", float("nan"), 0, 12).score == 0.0
    assert CaseScore("v", 0, "c", "lesion", 0.0, 0, 0).absent
    assert CaseScore("v", 0, "c", "lesion", 0.7, 10, 12).score == 0.7


def test_only_cases_both_validated_are_paired(tmp_path):
    splits = write_splits(tmp_path / "preprocessed" / "Dataset999_Toy", FOLDS)
    jobs = [job(tmp_path, "nnUNetTrainer", "2d", 0, splits), job(tmp_path, "nnUNetTrainer", "2d", 1, splits),
            job(tmp_path, "nnUNetTrainer25D", "2d", 0, splits)]  # the variant finished fold 0 only
    for j in jobs:
        write_fold(j, _cases(0.8, 0.7, ABSENT, j.fold))
    summaries, comparisons = summarise(jobs, list(dict.fromkeys(j.variant for j in jobs)), ["nnUNetTrainer:2d"],
                                       tmp_path / "report", Scoring(gt_folder(jobs[0])))
    assert {(c.metric, c.class_name): c.n_pairs for c in comparisons} == \
        {(m, n): 6 for m in ("dice", "hd95", "nsd") for n in ("organ", "lesion")}
    assert {c.split for c in comparisons} == {"cv"}  # no test predictions: no test rows


def test_holm_corrects_over_the_primary_family_only(tree):
    table = tree["table"]
    family = [c for c in table if c.primary]
    assert {(c.split, c.metric) for c in family} == {("cv", "dice")}  # the default: Dice on the cross-validation
    assert len(family) == 2 * 2 * 2  # classes x variants x baselines of that metric
    expected = multipletests([c.p_value for c in family if not math.isnan(c.p_value)], method="holm")[1]
    assert [c.p_holm for c in family if not math.isnan(c.p_value)] == pytest.approx(list(expected))
    secondary = [c for c in table if not c.primary]
    assert len(secondary) == len(table) - 8 and all(math.isnan(c.p_holm) for c in secondary)
    assert any(not math.isnan(c.p_value) for c in secondary)  # secondary keeps its uncorrected p
    # by hand: sorted p 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    made = [Comparison("v", "b", "x", 6, 0.1, 0, 0.2, p) for p in (0.01, 0.04, 0.03, float("nan"))]
    assert [c.p_holm for c in holm(made)][:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm(made)[3].p_holm)  # an undefined p is not part of the family


def test_another_primary_family_moves_the_correction(tree):
    from nnunet_25d.benchmark.summary import PrimaryComparison, compare_all

    summaries, baselines = list(tree["summaries"].values()), BASELINES
    table = compare_all(summaries, baselines, PrimaryComparison("hd95", "test"))
    family = [c for c in table if c.primary]
    assert {(c.split, c.metric) for c in family} == {("test", "hd95")} and len(family) == 8
    default = {_key(c): c for c in tree["table"]}
    for c in table:  # the comparisons themselves do not change; only who is corrected
        np.testing.assert_equal((c.mean_difference, c.p_value), (default[_key(c)].mean_difference,
                                                                 default[_key(c)].p_value))


def test_sign_flip_p_is_the_enumerated_permutation_distribution():
    rng = np.random.default_rng(3)
    for n in (1, 2, 4, 7, 12):
        ours, theirs = rng.uniform(0.5, 0.9, n), rng.uniform(0.5, 0.9, n)
        assert sign_flip_p(ours, theirs) == pytest.approx(enumerated_sign_flip_p(ours - theirs))
    # four pairs of one sign: 2 of the 16 patterns reach |mean| -> the smallest p at n = 4
    assert sign_flip_p(np.array([0.9, 0.8, 0.85, 0.7]), np.array([0.1, 0.2, 0.3, 0.2])) == pytest.approx(0.125)
    assert math.isnan(sign_flip_p(np.array([]), np.array([])))
    assert math.isnan(sign_flip_p(np.array([0.5, 0.6]), np.array([0.5, 0.6])))


def test_sign_flip_p_beyond_exact_enumeration_is_a_seeded_monte_carlo():
    rng = np.random.default_rng(4)
    ours, theirs = rng.uniform(0.5, 0.9, 30), rng.uniform(0.5, 0.9, 30)
    p = sign_flip_p(ours, theirs)
    assert p == sign_flip_p(ours, theirs)  # seeded: the same report twice
    signs = rng.choice([-1.0, 1.0], size=(200_000, 30))  # an independent Monte Carlo of the same null
    d = ours - theirs
    reference = np.mean(np.abs((signs * d).mean(axis=1)) >= abs(d.mean()) * (1 - 1e-9))
    assert p == pytest.approx(reference, abs=0.01)
    assert sign_flip_p(ours + 0.5, theirs) == pytest.approx(2 / 100_000)  # all one sign: (0 + 1) / (R + 1), twice


def test_rank_stability_is_the_case_bootstrap_written_out():
    from nnunet_25d.benchmark.statistics import rank_stability

    rng = np.random.default_rng(2)
    values = {"a": rng.uniform(0.6, 0.9, 7), "b": rng.uniform(0.6, 0.9, 7), "c": np.full(7, 0.75)}
    for higher in (True, False):
        got = rank_stability(values, higher, resamples=200, seed=3)
        draws = np.random.default_rng(3).integers(0, 7, size=(200, 7))
        firsts, ranks = dict.fromkeys(values, 0), dict.fromkeys(values, 0)
        for drawn in draws:
            means = {n: float(np.mean(v[drawn])) for n, v in values.items()}
            for n in values:
                rank = 1 + sum((means[o] > means[n]) if higher else (means[o] < means[n]) for o in values)
                firsts[n] += rank == 1
                ranks[n] += rank
        assert got == {n: (pytest.approx(firsts[n] / 200), pytest.approx(ranks[n] / 200)) for n in values}
    tied = rank_stability({"a": np.ones(3), "b": np.ones(3)}, True, resamples=10)
    assert tied == {"a": (1.0, 1.0), "b": (1.0, 1.0)}  # ties share the better rank


def test_mean_std_of_none_one_and_several_values():
    from nnunet_25d.benchmark.statistics import mean_std

    assert all(math.isnan(v) for v in mean_std([]))
    assert all(math.isnan(v) for v in mean_std([float("nan")]))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([0.4, float("nan"), 0.8]) == (pytest.approx(0.6), pytest.approx(np.std([0.4, 0.8], ddof=1)))


def test_rank_stability_without_cases_is_undefined():
    from nnunet_25d.benchmark.statistics import rank_stability

    assert rank_stability({}, True) == {}
    empty = rank_stability({"a": np.array([]), "b": np.array([])}, True)
    assert set(empty) == {"a", "b"} and all(math.isnan(v) for pair in empty.values() for v in pair)


def test_hodges_lehmann_is_the_median_of_the_walsh_averages():
    d = np.array([0.1, -0.3, 0.5])
    walsh = [0.1, -0.3, 0.5, (0.1 - 0.3) / 2, (0.1 + 0.5) / 2, (-0.3 + 0.5) / 2]
    assert hodges_lehmann(d) == pytest.approx(np.median(walsh))  # 0.1
    assert hodges_lehmann(np.array([0.2, 0.2, 0.2, 5.0])) == pytest.approx(0.2)  # an outlier does not drag it
    assert math.isnan(hodges_lehmann(np.array([])))


def test_unequal_folds_the_table_and_the_difference_agree_in_sign():
    from nnunet_25d.benchmark.matrix import Variant
    from nnunet_25d.benchmark.summary import VariantSummary, compare_all

    def summary(trainer: str, small_fold: float, large_fold: float) -> VariantSummary:
        variant = Variant(trainer, "2d")
        cases = [CaseScore(variant.key, 0, f"a{i}", "organ", small_fold, 100, 100) for i in range(2)] + \
            [CaseScore(variant.key, 1, f"b{i}", "organ", large_fold, 100, 100) for i in range(8)]
        return VariantSummary(variant, [], cases)

    # folds of 2 and 8 cases: by the mean of fold means A (0.725) beats B (0.45); over cases B wins
    a, b = summary("nnUNetTrainer25D", 1.0, 0.45), summary("nnUNetTrainer", 0.2, 0.7)
    comparison = compare_all([a, b], ["nnUNetTrainer:2d"])[0]
    assert comparison.mean_difference == pytest.approx(-0.04)
    assert a.means[("cv", "dice")]["organ"][0] == pytest.approx(0.56)
    assert b.means[("cv", "dice")]["organ"][0] == pytest.approx(0.60)
    assert a.means[("cv", "dice")]["organ"][1] == pytest.approx(np.std([1.0, 0.45], ddof=1))


def test_outcomes_count_missed_structures_and_false_positive_cases(tree):
    painter = tree["summaries"]["nnUNetTrainer25DPainter:2d"].outcomes("cv", "lesion")
    clean = tree["summaries"]["nnUNetTrainer25D:2d"].outcomes("cv", "lesion")
    assert (painter.present, painter.missed, painter.empty, painter.false_positive) == (6, 0, 6, 6)
    assert (clean.present, clean.missed, clean.empty, clean.false_positive) == (6, 0, 6, 0)
    from nnunet_25d.benchmark.matrix import Variant
    from nnunet_25d.benchmark.summary import VariantSummary

    cases = [CaseScore("m", 0, "a", "x", 0.0, 50, 0), CaseScore("m", 0, "b", "x", 0.7, 50, 40),  # missed, found
             CaseScore("m", 0, "c", "x", float("nan"), 0, 0), CaseScore("m", 0, "d", "x", 0.0, 0, 9)]  # empty, FP
    made = VariantSummary(Variant("nnUNetTrainer", "2d"), [], cases).outcomes("cv", "x")
    assert (made.present, made.missed, made.empty, made.false_positive) == (2, 1, 2, 1)


def _scipys_paired_ci(ours: np.ndarray, theirs: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The reference: scipy's paired bootstrap (its default BCa, 9999 resamples), seeded as the benchmark seeds it."""
    ci = bootstrap((ours, theirs), lambda a, b, axis=-1: np.mean(a - b, axis=axis), paired=True, vectorized=True,
                   confidence_level=level, n_resamples=9999, rng=np.random.default_rng(0)).confidence_interval
    return ci.low, ci.high


def test_bootstrap_ci_is_scipys_paired_bootstrap_of_the_mean_difference():
    rng = np.random.default_rng(1)
    ours, theirs = rng.uniform(0.5, 1, 15), rng.uniform(0.5, 1, 15)
    low, high = bootstrap_ci(ours, theirs)
    assert (low, high) == pytest.approx(_scipys_paired_ci(ours, theirs))
    assert low < np.mean(ours - theirs) < high
    assert bootstrap_ci(ours, theirs, level=0.9) == pytest.approx(_scipys_paired_ci(ours, theirs, level=0.9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's BCa is undefined (NaN, a warning) when every difference is the same
        assert bootstrap_ci(np.array([0.5, 0.75, 1.0]), np.array([0.25, 0.5, 0.75])) == (0.25, 0.25)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([0.9]), np.array([0.8])))
    two = np.array([0.9, 0.7]), np.array([0.8, 0.4])  # two pairs that differ: BCa is defined
    assert bootstrap_ci(*two) == pytest.approx(_scipys_paired_ci(*two))


def test_compare_with_no_pairs_or_no_differences_is_undefined_not_an_error():
    score = {"a": CaseScore("v", 0, "a", "x", 0.5, 10, 10)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty array
        empty = compare({}, score, "v", "b", "x", "dice", "cv")
    assert empty.n_pairs == 0 and math.isnan(empty.mean_difference) and math.isnan(empty.p_value)
    same = compare(score, score, "v", "b", "x", "dice", "cv")
    assert same.n_pairs == 1 and same.mean_difference == 0 and math.isnan(same.p_value)


def test_cases_csv_holds_every_case_and_is_what_the_statistics_use(tree):
    rows = list(csv.DictReader(open(tree["out"] / "cases.csv")))
    assert list(rows[0]) == ["variant", "split", "fold", "case", "class", "dice", "hd95", "nsd", "n_ref", "n_pred",
                             "nsd_tolerance_mm", "seed"]
    assert len(rows) == len(MODELS) * (12 + 8) * 2
    painted = [r for r in rows if r["variant"] == "nnUNetTrainer25DPainter:2d" and r["case"] in ("c07", "t05")
               and r["class"] == "lesion"]
    assert [float(r.pop("hd95")) for r in painted] == pytest.approx([DIAGONAL] * 2)  # spacing read as float32
    assert painted == [{"variant": "nnUNetTrainer25DPainter:2d", "split": split, "fold": fold, "case": case,
                        "class": "lesion", "dice": "0.0", "nsd": "0.0", "n_ref": "0", "n_pred": "40",
                        "nsd_tolerance_mm": "2.0", "seed": "0"}
                       for split, fold, case in (("cv", "1", "c07"), ("test", "-1", "t05"))]
    absent = [r for r in rows
              if r["variant"] == "nnUNetTrainer25D:2d" and r["case"] == "c07" and r["class"] == "lesion"]
    assert (absent[0]["dice"], absent[0]["hd95"], absent[0]["nsd"]) == ("", "", "")  # both empty: left out
    scores = read_cases_csv(tree["out"] / "cases.csv")
    ours = [repr(s) for s in scores if s.variant == "nnUNetTrainer25D:2d"]  # repr: NaN == NaN
    assert ours == [repr(s) for s in tree["summaries"]["nnUNetTrainer25D:2d"].cases]


def test_report_names_n_ci_and_role_of_every_comparison(tree):
    summaries, comparisons = list(tree["summaries"].values()), list(tree["comparisons"].values())
    markdown = write_report(summaries, comparisons, BASELINES, tree["out"], "toy")
    assert "nnUNetTrainer 2d (baseline)" in markdown and "nnUNetTrainer 3d_fullres (baseline)" in markdown
    for c in comparisons:
        if c.metric == "dice":
            flag = "†" if c.n_pairs < 10 else ""
            # cross-validation: a CI clustered by fold where the pairs come from both folds; the test set is one
            # ensemble (one cluster, one seed): no such column
            clustered = "" if c.split == "test" else " n/a |" if math.isnan(c.ci_clustered_low) else \
                f" [{c.ci_clustered_low:+.3f}, {c.ci_clustered_high:+.3f}] |"
            spans_both_folds = c.class_name == "organ" or "Painter" in c.variant  # fold 1 has no lesion
            assert (not math.isnan(c.ci_clustered_low)) == (c.split == "cv" and spans_both_folds)
            row = f"| {c.class_name} | {c.variant} | {c.baseline} | {c.n_pairs} | {c.mean_difference:+.3f} " \
                  f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]{flag} |{clustered} {c.hodges_lehmann:+.3f} |"
            assert row in markdown
    sections = [line for line in markdown.splitlines() if line.startswith("### Each variant")]
    assert sections[0] == "### Each variant against each baseline (primary): Dice, CV over folds 0,1"
    assert len(sections) == 6 and all("(secondary, uncorrected)" in line for line in sections[1:])
    assert "† CI from fewer than 10 pairs" in markdown
    assert "**Power (CV over folds 0,1): 8 comparisons in the primary family, n ≤ 12 pairs each" in markdown
    assert "| nnUNetTrainer25DPainter 2d | 0 / 12, 0 / 0 | 0 / 6, 6 / 6 |" in markdown  # missed, false positives
    assert "![Dice per case, paired against nnUNetTrainer 2d](paired_per_case.png)" in markdown
    assert (tree["out"] / "paired_per_case.png").stat().st_size > 10_000
    # lesion: 2d's 0.70 beats 3d_fullres's 0.58 and the 2.5D models' 0.64 in every resample of the cases
    assert "### Rank stability: Dice, CV over folds 0,1" in markdown
    assert "| nnUNetTrainer 2d | 0% first, mean rank 4.00 | 100% first, mean rank 1.00 |" in markdown
    rows = list(csv.DictReader(open(tree["out"] / "comparisons.csv")))
    assert len(rows) == len(comparisons) == 2 * 3 * 8
    assert {r["n_pairs"] for r in rows if r["variant"] == "nnUNetTrainer25DPainter:2d" and r["class"] == "lesion"} \
        == {"12", "8"}  # cross-validation, test set
    assert sum(r["primary"] == "1" for r in rows) == 8
    assert all(r["holm_p"] == "nan" for r in rows if r["primary"] == "0")


def test_surface_metrics_count_false_positives_on_empty_cases_like_dice(tree):
    comparisons, summaries = tree["comparisons"], tree["summaries"]
    baseline = summaries["nnUNetTrainer:3d_fullres"].scores("lesion")
    painter = summaries["nnUNetTrainer25DPainter:2d"].scores("lesion")
    for metric, painted, clean in (("hd95", DIAGONAL, 0.0), ("nsd", 0.0, 1.0)):
        test = comparisons[("cv", metric, "nnUNetTrainer25DPainter:2d", "nnUNetTrainer:3d_fullres", "lesion")]
        assert test.n_pairs == 12
        cases, ours, theirs = paired_scores(painter, baseline, metric)
        empty = [i for i, case in enumerate(cases) if case not in LESION_CASES]
        assert len(empty) == 6 and all(ours[i] == pytest.approx(painted) and theirs[i] == clean for i in empty)
        on_lesions = [painter[c].value(metric) - baseline[c].value(metric) for c in LESION_CASES if c in painter]
        assert test.mean_difference == pytest.approx((sum(on_lesions) + 6 * (painted - clean)) / 12)
        clean_test = comparisons[("cv", metric, "nnUNetTrainer25D:2d", "nnUNetTrainer:3d_fullres", "lesion")]
        assert clean_test.n_pairs == 6
    # the sign is variant minus baseline for every metric: painting is worse, a larger HD95 and a smaller NSD
    hd95 = comparisons[("cv", "hd95", "nnUNetTrainer25DPainter:2d", "nnUNetTrainer:3d_fullres", "lesion")]
    nsd = comparisons[("cv", "nsd", "nnUNetTrainer25DPainter:2d", "nnUNetTrainer:3d_fullres", "lesion")]
    assert hd95.mean_difference > 0 and not hd95.higher_is_better
    assert nsd.mean_difference < 0 and nsd.higher_is_better


def test_surface_rule_on_a_single_case():
    painted = CaseScore("v", 0, "c", "lesion", 0.0, 0, 12, hd95=21.7, nsd=0.0)
    missed = CaseScore("v", 0, "c", "lesion", 0.0, 30, 0, hd95=21.7, nsd=float("nan"))
    absent = CaseScore("v", 0, "c", "lesion", float("nan"), 0, 0)
    assert (painted.value("hd95"), painted.value("nsd")) == (21.7, 0.0)
    assert missed.value("nsd") == 0.0  # from the voxel counts, whatever was stored
    assert all(math.isnan(absent.value(m)) for m in ("dice", "hd95", "nsd"))
    # paired with a model that correctly left the class out: that one gets the perfect value
    assert [list(a) for a in paired_scores({"c": absent}, {"c": painted}, "hd95")[1:]] == [[0.0], [21.7]]
    assert [list(a) for a in paired_scores({"c": absent}, {"c": painted}, "nsd")[1:]] == [[1.0], [0.0]]


def test_the_test_set_is_the_fold_ensemble_scored_like_cross_validation(tree):
    summary = tree["summaries"]["nnUNetTrainer25D:2d"]
    baseline = tree["summaries"]["nnUNetTrainer:2d"]
    assert summary.splits == ["cv", "test"]
    test_cases = [s for s in summary.cases if s.split == "test"]
    assert {s.fold for s in test_cases} == {-1} and sorted({s.case for s in test_cases}) == TEST_CASES
    organ = summary.scores("organ", "test")
    assert summary.means[("test", "dice")]["organ"][0] == pytest.approx(np.mean([organ[c].dice for c in TEST_CASES]))
    assert math.isnan(summary.means[("test", "dice")]["organ"][1])  # one model: no spread over folds
    lesion = summary.means[("test", "hd95")]["lesion"][0]
    assert lesion == pytest.approx(np.mean([summary.scores("lesion", "test")[c].hd95 for c in TEST_CASES[:4]]))
    comparison = tree["comparisons"][("test", "dice", "nnUNetTrainer25D:2d", "nnUNetTrainer:2d", "organ")]
    assert comparison.n_pairs == 8
    assert comparison.mean_difference == pytest.approx(0.96 - 0.80)
    ours, theirs = (np.array([s.scores("organ", "test")[c].dice for c in TEST_CASES]) for s in (summary, baseline))
    assert comparison.p_value == pytest.approx(enumerated_sign_flip_p(ours - theirs))


def test_cross_validation_means_are_over_cases_with_the_folds_spread_beside(tree):
    summary = tree["summaries"]["nnUNetTrainer25D:2d"]
    rows = [r for r in csv.DictReader(open(tree["out"] / "cases.csv"))
            if r["variant"] == "nnUNetTrainer25D:2d" and r["split"] == "cv" and r["class"] == "organ"]
    fold_means = [np.mean([float(r["hd95"]) for r in rows if r["fold"] == str(fold)]) for fold in (0, 1)]
    assert summary.fold_means("organ", "hd95") == {0: pytest.approx(fold_means[0]), 1: pytest.approx(fold_means[1])}
    assert summary.means[("cv", "hd95")]["organ"] == (pytest.approx(np.mean([float(r["hd95"]) for r in rows])),
                                                       pytest.approx(np.std(fold_means, ddof=1)))
    assert summary.dice == summary.means[("cv", "dice")]
    lesion = summary.fold_means("lesion", "hd95")
    assert lesion[0] > 0  # the hand-built lesions are 36 voxels off: a real surface distance
    assert math.isnan(lesion[1])  # fold 1 has no lesion, and the model painted none


def test_pairs_skip_only_the_cases_both_left_empty():
    absent = CaseScore("v", 0, "a", "x", float("nan"), 0, 0)
    present = CaseScore("v", 0, "b", "x", 0.8, 10, 12)
    other = CaseScore("w", 0, "b", "x", 0.6, 10, 9)
    cases, ours, theirs = paired_scores({"a": absent, "b": present}, {"a": absent, "b": other}, "dice")
    assert (cases, list(ours), list(theirs)) == (["b"], [0.8], [0.6])  # "a", sorted first, does not end the pairing


def test_one_pair_that_differs_cannot_be_significant():
    assert sign_flip_p(np.array([0.8]), np.array([0.6])) == pytest.approx(1.0)  # +d and -d: both as extreme


def test_value_follows_the_absent_present_rule_per_metric():
    painted_nan = CaseScore("v", 0, "c", "x", float("nan"), 0, 12, hd95=21.7, nsd=float("nan"))
    both = CaseScore("v", 0, "c", "x", 0.8, 10, 12, hd95=2.0, nsd=0.7)
    assert (painted_nan.value("dice"), painted_nan.value("nsd"), painted_nan.value("hd95")) == (0.0, 0.0, 21.7)
    assert (both.value("dice"), both.value("nsd"), both.value("hd95")) == (0.8, 0.7, 2.0)


def test_mean_score_leaves_out_correct_absences_and_applies_the_rule():
    scores = [CaseScore("v", 0, "a", "x", float("nan"), 0, 0), CaseScore("v", 0, "b", "x", 0.8, 10, 12),
              CaseScore("v", 0, "c", "x", float("nan"), 0, 5)]
    assert mean_score(scores, "dice") == pytest.approx(0.4)  # (0.8 + 0 for the painted empty case) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty list
        assert math.isnan(mean_score(scores[:1], "dice"))
