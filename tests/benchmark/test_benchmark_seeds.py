"""Seeded repeats: ``<TRAINER>_seed<N>`` trainers found by nnU-Net's own lookup, the matrix's jobs per seed, each
case's mean over repeats, the spread between repeats and the bootstrap clustered by fold and seed."""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.benchmark.matrix import Variant, build_jobs
from nnunet_25d.benchmark.statistics import CaseScore, clustered_bootstrap_ci, compare
from nnunet_25d.benchmark.summary import VariantSummary
from nnunet_25d.trainers.seeds import seeded_name, split_seed, with_seed

MODULE = "nnunet_25d.trainers.lookup"


def test_nnunets_lookup_finds_seeded_repeats_of_plugin_and_nnunet_trainers():
    for name, base in (("nnUNetTrainer25D_5epochs_20iters_seed2", "nnUNetTrainer25D_5epochs_20iters"),
                       ("nnUNetTrainer_seed1", "nnUNetTrainer")):
        found = recursive_find_python_class(TRAINER_FOLDER, name, MODULE)
        assert found.__name__ == name and found.__mro__[1].__name__ == base and found.seed == int(name[-1])
        assert recursive_find_python_class(TRAINER_FOLDER, name, MODULE) is found  # one class per name
        assert pickle.loads(pickle.dumps(found)) is found
    assert recursive_find_python_class(TRAINER_FOLDER, "nnUNetTrainerNoSuchThing_seed1", MODULE) is None


def test_a_seed_suffix_on_an_undeclared_plugin_name_still_names_the_problem():
    from nnunet_25d.trainers.registry import trainer_name_error

    assert trainer_name_error("nnUNetTrainer25D_seed3") is None
    assert "slab size 4" in str(trainer_name_error("nnUNetTrainer25D_4slices_seed1"))
    assert trainer_name_error("nnUNetTrainer25D_seed0") is not None  # seed 0 is the plain name


def test_names_and_the_seeding():
    assert seeded_name("nnUNetTrainer25D", 0) == "nnUNetTrainer25D" and split_seed("nnUNetTrainer25D") == \
        ("nnUNetTrainer25D", 0)
    assert seeded_name("nnUNetTrainer25D", 3) == "nnUNetTrainer25D_seed3"
    assert split_seed("nnUNetTrainer25D_10epochs_25iters_seed12") == ("nnUNetTrainer25D_10epochs_25iters", 12)

    class Base:  # stands in for nnUNetTrainer: what the seed must reach is the first draw of __init__
        def __init__(self, plans, configuration, fold, dataset_json, device):
            self.draw = torch.rand(3)
            self.received = (plans, configuration, fold, dataset_json, device)

        def print_to_log_file(self, *args) -> None:
            self.logged = args

    draws = {seed: with_seed(Base, seed, __name__)(None, "2d", 0, {}, "cpu").draw for seed in (1, 1, 2)}
    first, again = with_seed(Base, 1, __name__)(None, "2d", 0, {}, "cpu"), with_seed(Base, 1, __name__)
    assert torch.equal(first.draw, again(None, "2d", 0, {}, "cpu").draw)
    assert not torch.equal(draws[1], draws[2])
    assert "seed 1" in first.logged[0]
    assert with_seed(Base, 2, __name__)({"p": 1}, "3d_fullres", 4, {"d": 2}, "cpu").received == \
        ({"p": 1}, "3d_fullres", 4, {"d": 2}, "cpu")  # nnU-Net's arguments pass through
    made = with_seed(Base, 5, "some.module")
    assert (made.__name__, made.__qualname__, made.__module__, made.seed) == ("Base_seed5", "Base_seed5",
                                                                             "some.module", 5)


def test_every_generator_is_seeded():
    import random

    from nnunet_25d.trainers.seeds import seed_everything

    draws = []
    for _ in range(2):
        seed_everything(11)
        draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
    assert draws[0] == draws[1]


def test_jobs_repeat_every_variant_per_seed_into_folders_of_their_own(tmp_path):
    jobs = build_jobs([Variant("nnUNetTrainer25D", "2d", (5, 20))], [0, 1], "999", tmp_path, seeds=2)
    assert [(j.variant.seed, j.fold) for j in jobs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [j.model_folder.name for j in jobs[1:3]] == ["nnUNetTrainer25D_5epochs_20iters__nnUNetPlans__2d",
                                                         "nnUNetTrainer25D_5epochs_20iters_seed1__nnUNetPlans__2d"]
    assert {j.variant.key for j in jobs} == {"nnUNetTrainer25D:2d"}  # one model, compared as one
    assert jobs[2].variant.run_label == "nnUNetTrainer25D 2d seed 1"


def _summary(trainer: str, values: dict[int, list[float]], empty_seed_paints: bool = False) -> VariantSummary:
    """Two folds of three cases; per seed the organ Dice of each case; case "e" has no organ."""
    variant, cases = Variant(trainer, "2d"), []
    for seed, dice in values.items():
        for i, value in enumerate(dice):
            cases.append(CaseScore(variant.key, i // 3, f"c{i}", "organ", value, 100, 100, seed=seed))
        painted = 7 if empty_seed_paints and seed == 1 else 0
        cases.append(CaseScore(variant.key, 1, "e", "organ", 0.0 if painted else float("nan"), 0, painted, seed=seed))
    return VariantSummary(variant, [], cases)


def test_each_case_is_its_mean_over_repeats_under_the_absent_present_rule():
    summary = _summary("nnUNetTrainer25D", {0: [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 1: [0.7, 0.8, 0.9, 0.6, 0.7, 0.2]},
                       empty_seed_paints=True)
    scores = summary.scores("organ")
    assert summary.seeds == [0, 1]
    assert scores["c0"].value("dice") == pytest.approx(0.8) and scores["c5"].value("dice") == pytest.approx(0.3)
    # seed 0 correctly left "e" empty (perfect beside a repeat that painted), seed 1 painted it (0)
    assert not scores["e"].absent and scores["e"].value("dice") == pytest.approx(0.5)
    # each repeat on its own: seed 1's painted empty case scores 0 among its seven cases
    assert summary.seed_means("cv", "dice", "organ") == {0: pytest.approx(0.65), 1: pytest.approx(3.9 / 7)}
    assert summary.means[("cv", "dice")]["organ"][0] == pytest.approx(np.mean([0.8, 0.8, 0.8, 0.6, 0.6, 0.3, 0.5]))
    outcomes = summary.outcomes("cv", "organ")  # over every (case, repeat)
    assert (outcomes.present, outcomes.missed, outcomes.empty, outcomes.false_positive) == (12, 0, 2, 1)
    clean = _summary("nnUNetTrainer", {0: [0.5] * 6, 1: [0.5] * 6})
    assert clean.scores("organ")["e"].absent and math.isnan(clean.scores("organ")["e"].value("dice"))
    mean = scores["c5"]
    assert (mean.variant, mean.fold, mean.case, mean.class_name, mean.split) == ("nnUNetTrainer25D:2d", 1, "c5",
                                                                               "organ", "cv")


def test_comparisons_pair_the_case_means_and_cluster_by_fold_and_seed():
    ours = _summary("nnUNetTrainer25D", {0: [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 1: [0.7, 0.8, 0.9, 0.6, 0.7, 0.2]})
    theirs = _summary("nnUNetTrainer", {0: [0.5] * 6, 1: [0.6] * 6})
    c = compare(ours.scores("organ"), theirs.scores("organ"), "v", "b", "organ", "dice", "cv")
    assert c.n_pairs == 6  # "e": both models left it empty in every repeat
    assert c.mean_difference == pytest.approx(np.mean([0.8, 0.8, 0.8, 0.6, 0.6, 0.3]) - 0.55)
    per_case = [[0.9, 0.7], [0.8, 0.8], [0.7, 0.9], [0.6, 0.6], [0.5, 0.7], [0.4, 0.2]]
    assert (c.ci_clustered_low, c.ci_clustered_high) == clustered_bootstrap_ci(per_case, [[0.5, 0.6]] * 6,
                                                                               [0, 0, 0, 1, 1, 1])


def test_a_case_one_model_always_left_empty_keeps_the_clustered_interval():
    """The painter paints "e" in one repeat; the clean model leaves it empty in both: it scores the perfect value in
    each of its repeats, so every pair still has one value per repeat."""
    painter = _summary("nnUNetTrainer25D", {0: [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 1: [0.7] * 6}, empty_seed_paints=True)
    clean = _summary("nnUNetTrainer", {0: [0.5] * 6, 1: [0.6] * 6})
    c = compare(painter.scores("organ"), clean.scores("organ"), "v", "b", "organ", "dice", "cv")
    assert c.n_pairs == 7 and not math.isnan(c.ci_clustered_low)
    per_case = [[0.9, 0.7], [0.8, 0.7], [0.7, 0.7], [0.6, 0.7], [0.5, 0.7], [0.4, 0.7], [1.0, 0.0]]
    assert (c.ci_clustered_low, c.ci_clustered_high) == clustered_bootstrap_ci(
        per_case, [[0.5, 0.6]] * 6 + [[1.0, 1.0]], [0, 0, 0, 1, 1, 1, 1])


def reference_clustered_ci(ours, theirs, folds, resamples, seed, level=0.95):
    """The same resampling written out with lists: folds, then cases in each drawn fold, then each model's seeds."""
    rng = np.random.default_rng(seed)
    clusters = {}
    for index, fold in enumerate(folds):
        clusters.setdefault(fold, []).append(index)
    clusters = list(clusters.values())
    statistics = []
    for _ in range(resamples):
        drawn_clusters = [clusters[k] for k in rng.integers(0, len(clusters), len(clusters))]
        drawn_cases = [int(case) for cluster in drawn_clusters for case in rng.choice(cluster, len(cluster))]
        our_seeds = list(rng.integers(0, len(ours[0]), len(ours[0])))
        their_seeds = list(rng.integers(0, len(theirs[0]), len(theirs[0])))
        differences = [np.mean([ours[i][s] for s in our_seeds]) - np.mean([theirs[i][s] for s in their_seeds])
                       for i in drawn_cases]
        statistics.append(np.mean(differences))
    return tuple(np.quantile(statistics, [(1 - level) / 2, (1 + level) / 2]))


def test_the_clustered_bootstrap_is_the_two_stage_resampling_written_out():
    rng = np.random.default_rng(5)
    ours, theirs = rng.uniform(0.6, 0.9, (9, 2)).tolist(), rng.uniform(0.5, 0.8, (9, 3)).tolist()
    folds = [0, 0, 1, 1, 1, 2, 3, 3, 4]
    got = clustered_bootstrap_ci(ours, theirs, folds, resamples=300, seed=7)
    assert got == pytest.approx(reference_clustered_ci(ours, theirs, folds, 300, 7))
    assert clustered_bootstrap_ci(ours, theirs, folds, level=0.5, resamples=300, seed=7) == \
        pytest.approx(reference_clustered_ci(ours, theirs, folds, 300, 7, level=0.5))


def test_the_clustered_interval_is_wider_when_folds_differ():
    """Cases that move together within a fold: resampling folds sees it, resampling cases alone does not."""
    shifts = [0.3, -0.2, 0.25, -0.15, 0.1]
    folds = [f for f in range(5) for _ in range(6)]
    ours = [[0.6 + shifts[f] + 0.01 * (i % 6)] for i, f in enumerate(folds)]
    theirs = [[0.6]] * 30
    clustered = clustered_bootstrap_ci(ours, theirs, folds)
    by_case = clustered_bootstrap_ci(ours, theirs, list(range(30)))  # every case its own cluster
    assert clustered[1] - clustered[0] > 1.5 * (by_case[1] - by_case[0])


def test_two_folds_and_one_repeat_give_a_clustered_interval():
    low, high = clustered_bootstrap_ci([[0.5], [0.7], [0.6], [0.9]], [[0.4]] * 4, [0, 0, 1, 1])
    assert low < 0.275 < high  # the mean difference lies inside


def test_one_cluster_and_one_repeat_or_too_few_pairs_give_no_clustered_interval():
    assert all(math.isnan(v) for v in clustered_bootstrap_ci([[0.5], [0.7]], [[0.4], [0.4]], [0, 0]))
    assert all(math.isnan(v) for v in clustered_bootstrap_ci([[0.5, 0.6]], [[0.4]], [0]))
    assert all(math.isnan(v) for v in clustered_bootstrap_ci([[0.5, 0.6], [0.7]], [[0.4], [0.4]], [0, 1]))
    two_seeds = clustered_bootstrap_ci([[0.5, 0.6], [0.7, 0.9]], [[0.4], [0.4]], [-1, -1])  # the test set
    assert not math.isnan(two_seeds[0]) and two_seeds[0] <= two_seeds[1]


def test_cases_csv_keeps_the_seed(tmp_path: Path):
    from nnunet_25d.benchmark.collect import read_cases_csv, write_cases_csv

    scores = [CaseScore("v:2d", 0, "c0", "organ", 0.5, 10, 10, seed=2)]
    write_cases_csv(scores, tmp_path / "cases.csv")
    assert repr(read_cases_csv(tmp_path / "cases.csv")) == repr(scores)  # repr: NaN == NaN
    lines = (tmp_path / "cases.csv").read_text().splitlines()  # a cases.csv of an older run has no seed column
    (tmp_path / "old.csv").write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    assert read_cases_csv(tmp_path / "old.csv")[0].seed == 0


def test_outcome_counts_say_that_each_case_counts_once_per_repeat():
    from nnunet_25d.benchmark.report import _repeats_counted

    twice = _summary("nnUNetTrainer25D", {0: [0.5] * 6, 1: [0.5] * 6})
    once = _summary("nnUNetTrainer", {0: [0.5] * 6})
    assert _repeats_counted([once, twice]) == ["Counted per case and seeded repeat: each case counts 2 times, once "
                                               "per training.", ""]
    assert _repeats_counted([once]) == []
