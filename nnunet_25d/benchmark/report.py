"""The benchmark's report through the shared engine (:mod:`nnunet_25d.report`): ``benchmark.md`` (verdict, key table,
figures, what the models segment, the other tables and comparisons, Methods at the end), ``benchmark.csv``,
``comparisons.csv``, ``benchmark.png`` (scores, cost, curves), per-case box plots and segmentation figures."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from nnunet_25d.files import write_text_atomically
from nnunet_25d.benchmark.collect import FoldResult
from nnunet_25d.benchmark.matrix import RESOURCES_FILE
from nnunet_25d.benchmark.power import Power
from nnunet_25d.benchmark.statistics import (RANK_RESAMPLES, CaseScore, Comparison, mean_score, paired_scores,
                                             paired_value, rank_stability)
from nnunet_25d.benchmark.summary import Outcomes, PrimaryComparison, VariantSummary, class_names_of
from nnunet_25d.benchmark.testset import PREDICTIONS_FOLDER
from nnunet_25d.report.document import key_table, methods_section, reading_choice, results_sections, verdict
from nnunet_25d.report.figures import colour, overview_figure, paired_figure, per_case_figure, save
from nnunet_25d.report.load import CORES_KEY, OTHER_CPU_KEY
from nnunet_25d.report.machine import Machine, this_machine
from nnunet_25d.report.metrics import DICE, HD95, NSD, Metric, metric
from nnunet_25d.report.rows import Difference, ModelRow, Score, metrics_of, reference_row, splits_of
from nnunet_25d.report.segmentation_figures import HEADING, segmentation_section
from nnunet_25d.report.segmentations import ModelSegmentations, SplitFiles
from nnunet_25d.report.setting import ReportSetting, classes_of_dataset, schedules_of
from nnunet_25d.report.tables import (differences_table, render_markdown, write_differences_csv,
                                      write_scores_csv)

CURVES = ("train_losses", "val_losses", "ema_fg_dice")


def fold_resources(fold: FoldResult) -> dict:
    """The fold's record of its measured runs (peak memory, load, cores, machine); {} for runs made elsewhere."""
    path = fold.job.fold_folder / RESOURCES_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def mean_curves(folds: list[FoldResult]) -> dict[str, list[float]]:
    """Each curve's mean over folds (folds of unequal length are truncated to the shortest)."""
    means = {}
    for key in CURVES:
        curves = [f.curves[key] for f in folds if f.curves.get(key)]
        if curves:
            length = min(map(len, curves))
            means[key] = list(np.mean([c[:length] for c in curves], axis=0))
    return means


def variant_scores(summary: VariantSummary) -> list[Score]:
    """Every split x metric x class of the variant: mean (± std over folds for the CV), per fold, per case."""
    return [Score(split, metric_key, name, mean, std,
                  per_fold=summary.fold_means(name, metric_key) if split == "cv" else {},
                  per_case=tuple(summary.case_values(split, metric_key, name).values()))
            for (split, metric_key), by_class in summary.means.items() for name, (mean, std) in by_class.items()]


def variant_row(summary: VariantSummary, baselines: list[str]) -> ModelRow:
    other_cpu, cores = most_contended(summary.folds)
    hours, device = training_hours(summary.folds)
    return ModelRow(summary.variant.label, summary.variant.trainer_name, summary.variant.configuration,
                    variant_scores(summary), summary.seconds_per_epoch, summary.seconds_per_case,
                    summary.parameters, summary.peak_memory_mib, other_cpu, cores, mean_curves(summary.folds),
                    summary.variant.key in baselines, tuple(summary.fold_ids), key=summary.variant.key,
                    training_hours=hours, training_device=device, engine=summary.engine)


def training_hours(folds: list[FoldResult]) -> tuple[float, str]:
    """(hours, "GPU" | "CPU"): the measured trainings' wall time (every fold and seeded repeat), times the GPUs
    each used on CUDA; NaN where a fold's run was not measured here."""
    records = [fold_resources(f) for f in folds]
    if not records or any("wall_seconds" not in r for r in records):
        return float("nan"), ""
    on_gpu = any((r.get("machine") or {}).get("gpu") for r in records)
    seconds = sum(r["wall_seconds"] * (_gpus(r) if on_gpu else 1) for r in records)
    return seconds / 3600, "GPU" if on_gpu else "CPU"


def _gpus(record: dict) -> int:
    command = (record.get("commands") or [[]])[-1]
    return int(command[command.index("-num_gpus") + 1]) if "-num_gpus" in command[:-1] else 1


def most_contended(folds: list[FoldResult]) -> tuple[float, int | None]:
    """(peak cores used by other work, cores) of the fold where other work took the largest share of its
    machine's cores; (NaN, None) if none recorded."""
    recorded = [(r[OTHER_CPU_KEY], r.get(CORES_KEY) or os.cpu_count()) for r in map(fold_resources, folds)
                if OTHER_CPU_KEY in r]
    return max(recorded, key=lambda pair: pair[0] / pair[1], default=(float("nan"), None))


def difference(c: Comparison) -> Difference:
    return Difference(c.variant, c.baseline, c.split, c.metric, c.class_name, c.n_pairs, c.mean_difference,
                      c.ci_low, c.ci_high, c.p_value, c.p_holm, c.hodges_lehmann, c.primary, c.few_pairs,
                      c.ci_clustered_low, c.ci_clustered_high)


def machines(summaries: list[VariantSummary]) -> tuple[Machine, ...]:
    """The machines the folds' measured runs recorded; this one where none did."""
    recorded = [fold_resources(f).get("machine") for s in summaries for f in s.folds]
    found = tuple(dict.fromkeys(Machine.from_dict(r) for r in recorded if r))
    return found or (this_machine(),)


def benchmark_setting(summaries: list[VariantSummary], baselines: list[str]) -> ReportSetting:
    first = summaries[0].folds[0].job
    dataset_json = json.loads((first.model_folder / "dataset.json").read_text())
    folds = tuple(sorted({f for s in summaries for f in s.fold_ids}))
    return ReportSetting(first.model_root.name, schedules_of([s.variant.trainer_name for s in summaries]), folds,
                         classes_of_dataset(dataset_json), machines(summaries), dataset_json.get("description", ""),
                         "validation inference", _compared(summaries, baselines))


def _compared(summaries: list[VariantSummary], baselines: list[str]) -> str:
    names = [s.variant.label for s in summaries if s.variant.key in baselines]
    return f"{len(summaries)} models" + (f", each against {' and '.join(names)}" if names else "")


def best_configuration_section(information: dict | None, test_scores: list[CaseScore] | None = None) -> str:
    """Markdown of nnUNetv2_find_best_configuration's ``inference_information.json``, and the recommendation's
    test-set scores (its postprocessing applied) where they were computed."""
    if not information:
        return ""
    best = information["best_model_or_ensemble"]
    models = ", ".join(f"`{m['trainer']}` {m['configuration']}" for m in best["selected_model_or_models"])
    lines = ["### nnUNetv2_find_best_configuration over the matrix", "",
             f"Best: **{models}** — cross-validation Dice {best['result_on_crossval_pre_pp']:.4f}, "
             f"{best['result_on_crossval_post_pp']:.4f} with nnU-Net's postprocessing "
             f"(`{best['postprocessing_file']}`).", "", "| model or ensemble | cross-validation Dice |", "|---|---|"]
    ranked = sorted(information["all_results"].items(), key=lambda item: -item[1])
    lines += [f"| {name} | {value:.4f} |" for name, value in ranked]
    if test_scores:
        lines += ["", f"The recommendation on the test set, run as nnU-Net prints it (fold ensembles, "
                      f"{'nnUNetv2_ensemble, ' if len(best['selected_model_or_models']) > 1 else ''}"
                      f"nnUNetv2_apply_postprocessing): " + _recommended_scores(test_scores) + "."]
    return "\n".join(lines) + "\n"


def _recommended_scores(scores: list[CaseScore]) -> str:
    names = list(dict.fromkeys(s.class_name for s in scores))
    parts = []
    for name in names:
        chosen = [s for s in scores if s.class_name == name]
        n = sum(not s.absent for s in chosen)
        values = ", ".join(f"{m.label} {m.format(mean_score(chosen, m.key))}" for m in (DICE, HD95, NSD)
                           if not np.isnan(mean_score(chosen, m.key)))
        parts.append(f"{name} {values} (n = {n})")
    return "; ".join(parts)


def statistics_note(primary: PrimaryComparison) -> str:
    metric_label = metric(primary.metric).label
    return (
        "Scores: mean over the split's cases (cross-validation: every benchmarked fold's validation cases, each "
        "validated once; ± the std of the folds' means); HD95 in mm; NSD (MONAI) weighs each surface element by "
        "its area where the spacing is anisotropic (largest / smallest > 1.1; counting edge voxels would weigh the "
        "faces along z by their voxel count, so the score would move with the slice thickness), MONAI's edge-voxel "
        "count otherwise. A class absent from both reference and "
        "prediction is left out; present in exactly one of them, it scores 0 (HD95: the image diagonal). "
        "Comparisons: every variant against every baseline, per class, paired over the n cases both scored; a pair "
        "is left out only when both models correctly predicted the class absent; if only one of them paints it into "
        "an empty case, that one scores 0 and the other 1. Δ: mean paired difference (variant − baseline) with a "
        "95 % bootstrap CI (SciPy, BCa, 9999 resamples of the pairs; † from fewer than 10 pairs); HL: "
        "Hodges-Lehmann shift (median of the Walsh averages); p: two-sided sign-flip permutation test of the mean "
        "difference (SciPy; exact up to 16 pairs, 99 999 seeded resamples beyond), the quantity the CI estimates. "
        f"Primary comparison, declared before the run (--primary-metric, --primary-split): {metric_label} on the "
        f"{'cross-validation' if primary.split == 'cv' else 'test set'}, Holm-adjusted over its family of every "
        "class × variant × baseline (statsmodels); every other comparison is secondary: its p is not corrected and "
        "is no verdict. s/case: validation inference (sliding window, TTA, export) from the training logs. Peak "
        "memory: GPU on CUDA, process RSS otherwise. Other work: the most cores other processes used (machine CPU "
        "time minus nnU-Net's own processes, highest 30-s mean) during the fold's measured runs; above a quarter of "
        "the cores the timing is flagged.")


def comparisons_sections(differences: list[Difference], metrics: list[Metric], setting: ReportSetting) -> list[str]:
    """A table per split x metric that has comparisons, the primary one first."""
    groups = dict.fromkeys((d.split, d.metric) for d in sorted(differences, key=lambda d: not d.primary))
    parts = []
    for split, key in groups:
        m = next((m for m in metrics if m.key == key), metric(key))
        chosen = [d for d in differences if (d.split, d.metric) == (split, key)]
        role = "primary" if any(d.primary for d in chosen) else "secondary, uncorrected"
        parts += [f"### Each variant against each baseline ({role}): {m.label}, {setting.split_title(split)}", "",
                  differences_table(chosen, m), ""]
    return parts


def power_line(comparisons: list[Comparison], setting: ReportSetting) -> str:
    """The primary family's power, from the comparisons it really holds."""
    family = [c for c in comparisons if c.primary]
    if not family:
        return "Power: no primary comparison (no variant beside a baseline on the primary split)."
    split = setting.split_title(family[0].split)
    return "**" + Power(max(c.n_pairs for c in family), len(family)).sentence(split) + "**"


def aligned_values(summaries: list[VariantSummary], split: str, metric_key: str, name: str
                   ) -> tuple[list[str], dict[str, np.ndarray]]:
    """(cases, model label -> values): the cases every model scored, except those all of them correctly left
    empty, valued as in a paired comparison (a correct absence beside a painted one scores the perfect value)."""
    scores = [s.scores(name, split) for s in summaries if split in s.splits]
    chosen = [s for s in summaries if split in s.splits]
    cases = sorted(set.intersection(*(set(x) for x in scores))) if scores else []
    cases = [c for c in cases if not all(x[c].absent for x in scores)]
    values = {s.variant.label: np.asarray([paired_value(x[c], metric_key) for c in cases])
              for s, x in zip(chosen, scores)}
    keep = np.all([np.isfinite(v) for v in values.values()], axis=0) if values and cases else np.zeros(0, bool)
    return [c for c, k in zip(cases, keep) if k], {label: v[keep] for label, v in values.items()}


def rank_section(summaries: list[VariantSummary], primary: PrimaryComparison, setting: ReportSetting) -> str:
    """How stable the ranking of the primary metric is: per class, bootstrap resamples of the cases."""
    m = metric(primary.metric)
    names = class_names_of(summaries)
    body = [[s.variant.label] for s in summaries if primary.split in s.splits]
    if len(body) < 2:
        return ""
    for name in names:
        stability = rank_stability(aligned_values(summaries, primary.split, primary.metric, name)[1],
                                   m.higher_is_better)
        for row in body:
            first, mean_rank = stability.get(row[0], (float("nan"), float("nan")))
            row.append("n/a" if np.isnan(first) else f"{first:.0%} first, mean rank {mean_rank:.2f}")
    return "\n".join([f"### Rank stability: {m.label}, {setting.split_title(primary.split)}", "",
                      f"Each model ranked by its mean over the same {RANK_RESAMPLES} bootstrap resamples of the "
                      "cases every model scored: how often it ranks first, and its mean rank.", "",
                      render_markdown(["model"] + names, body), ""])


def seed_section(summaries: list[VariantSummary], metrics: list[Metric], setting: ReportSetting) -> str:
    """With seeded repeats: per model and class, each repeat's mean and their spread (std over repeats), beside the
    spread between folds that the scores tables give."""
    repeated = [s for s in summaries if len(s.seeds) > 1]
    if not repeated:
        return ""
    parts, names = [], class_names_of(repeated)
    for split in dict.fromkeys(split for s in repeated for split in s.splits):
        for m in metrics:
            body = [[s.variant.label] + [_seed_cell(s.seed_means(split, m.key, n), m) for n in names]
                    for s in repeated if split in s.splits]
            parts += [f"### Spread between seeded repeats: {m.label}, {setting.split_title(split)}", "",
                      render_markdown(["model"] + [f"{m.label} {n}: per seed (std)" for n in names], body), ""]
    return "\n".join(parts)


def _seed_cell(means: dict[int, float], m: Metric) -> str:
    values = [v for v in means.values() if not np.isnan(v)]
    if not values:
        return "n/a"
    spread = f" ({m.format(float(np.std(values, ddof=1)))})" if len(values) > 1 else ""
    return " / ".join(m.format(v) for v in values) + spread


def outcomes_section(summaries: list[VariantSummary], setting: ReportSetting) -> str:
    """Per split and model, each class's missed structures (in the reference, not predicted) and false-positive
    cases (predicted into a case whose reference has none)."""
    parts, names = [], class_names_of(summaries)
    for split in dict.fromkeys(split for s in summaries for split in s.splits):
        header = ["model"] + [f"{name}: missed / present, false positive / empty" for name in names]
        body = [[s.variant.label] + [_outcome_cell(s.outcomes(split, name)) for name in names]
                for s in summaries if split in s.splits]
        parts += [f"### Missed structures and false-positive cases, {setting.split_title(split)}", "",
                  *_repeats_counted(summaries), render_markdown(header, body), ""]
    return "\n".join(parts)


def _repeats_counted(summaries: list[VariantSummary]) -> list[str]:
    """With seeded repeats every (case, repeat) counts once: said, as the denominators exceed the cases' n."""
    repeats = max(len(s.seeds) for s in summaries)
    if repeats <= 1:
        return []
    return [f"Counted per case and seeded repeat: each case counts {repeats} times, once per training.", ""]


def _outcome_cell(outcomes: Outcomes) -> str:
    return f"{outcomes.missed} / {outcomes.present}, {outcomes.false_positive} / {outcomes.empty}"


def hd95_section(summaries: list[VariantSummary], setting: ReportSetting) -> str:
    """HD95's median [IQR] over cases: its mean is driven by failures scored as the image diagonal."""
    parts, names = [], class_names_of(summaries)
    for split in dict.fromkeys(split for s in summaries for split in s.splits):
        body = [[s.variant.label] + [_median_iqr(list(s.case_values(split, "hd95", n).values())) for n in names]
                for s in summaries if split in s.splits]
        if any(cell != "n/a" for row in body for cell in row[1:]):
            parts += [f"### HD95 (mm) median [IQR] over cases, {setting.split_title(split)}", "",
                      render_markdown(["model"] + [f"HD95 {n}" for n in names], body), ""]
    return "\n".join(parts)


def _median_iqr(values: list[float]) -> str:
    finite_values = [v for v in values if not np.isnan(v)]
    if not finite_values:
        return "n/a"
    low, median, high = np.percentile(finite_values, [25, 50, 75])
    return f"{median:.2f} [{low:.2f}, {high:.2f}]"


PAIRED_FIGURE = "paired_per_case.png"


def paired_pairs(summaries: list[VariantSummary], baseline: VariantSummary, primary: PrimaryComparison
                 ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(variant label, class) -> (variant's, baseline's) paired values on the primary split and metric."""
    pairs = {}
    for s in summaries:
        if s is baseline or primary.split not in s.splits:
            continue
        for name in s.class_names:
            _, ours, theirs = paired_scores(s.scores(name, primary.split), baseline.scores(name, primary.split),
                                            primary.metric)
            pairs[(s.variant.label, name)] = (ours, theirs)
    return pairs


def write_paired_figure(summaries: list[VariantSummary], rows: list[ModelRow], baselines: list[str],
                        primary: PrimaryComparison, setting: ReportSetting, out_dir: Path) -> str:
    """The primary comparison per case against the reference baseline (the cost table's: :func:`reference_row`);
    the Markdown line that shows it."""
    reference_key = getattr(reference_row(rows), "key", None)
    reference = next((s for s in summaries if s.variant.key == reference_key), None)
    if reference is None or primary.split not in reference.splits:
        return ""
    pairs = paired_pairs([s for s in summaries if s.variant.key not in baselines], reference, primary)
    if not pairs:
        return ""
    m = metric(primary.metric)
    title = f"{setting.title([primary.split])}\n{m.label} per case: each variant against {reference.variant.label}"
    save(paired_figure(pairs, reference.variant.label, m, title), out_dir / PAIRED_FIGURE)
    return f"![{m.label} per case, paired against {reference.variant.label}]({PAIRED_FIGURE})"


def per_case_file(m: Metric, split: str) -> str:
    """``dice_per_case.png`` for the CV, ``dice_per_case_test.png`` for the test set."""
    return f"{m.key}_per_case{'' if split == 'cv' else '_' + split}.png"


def references_folder(summaries: list[VariantSummary], split: str, raw_dataset: Path | None) -> Path | None:
    """Where the split's reference label images lie: the cross-validation's in nnUNet_preprocessed's
    ``gt_segmentations`` (what nnU-Net's validation compared with; the raw ``labelsTr`` where that is not found),
    the test set's in the raw ``labelsTs``."""
    if split == "test":
        return raw_dataset / "labelsTs" if raw_dataset is not None else None
    job = summaries[0].folds[0].job
    candidates = [job.splits_file.parent / "gt_segmentations"] if job.splits_file is not None else []
    if os.environ.get("nnUNet_preprocessed"):
        candidates.append(Path(os.environ["nnUNet_preprocessed"]) / job.model_root.name / "gt_segmentations")
    candidates += [raw_dataset / "labelsTr"] if raw_dataset is not None else []
    return next((c for c in candidates if c.is_dir()), None)


def segmentation_models(summaries: list[VariantSummary], baselines: list[str], split: str, out_dir: Path,
                        ending: str) -> list[ModelSegmentations]:
    """Each model scored on ``split``: its per-case Dice (the comparisons' values; with seeded repeats their mean)
    and the label images of its plain trainer (seed 0): the validation folder of the fold that validated each
    case, or its fold ensemble's test-set predictions."""
    models = []
    for s in summaries:
        if split not in s.splits:
            continue
        jobs = {f.job.fold: f.job for f in s.folds if f.job.variant.seed == 0}
        if split == "test":
            folder = out_dir / PREDICTIONS_FOLDER / next(iter(jobs.values())).model_folder.name if jobs else None
            files = {c.case: folder / f"{c.case}{ending}" for c in s.cases
                     if c.split == "test" and c.seed == 0 and folder is not None}
        else:
            files = {c.case: jobs[c.fold].fold_folder / "validation" / f"{c.case}{ending}" for c in s.cases
                     if c.split == "cv" and c.seed == 0 and c.fold in jobs}
        dice = {name: {case: score.value("dice") for case, score in s.scores(name, split).items()}
                for name in s.class_names}
        models.append(ModelSegmentations(s.variant.label, s.variant.key in baselines, dice, files))
    return models


def segmentation_part(summaries: list[VariantSummary], baselines: list[str], split: str, setting: ReportSetting,
                      out_dir: Path, figures: str, raw_dataset: Path | None) -> tuple[str, str]:
    """("What the models segment", its Methods sentence) on ``split``; the raw dataset (images, ``labelsTs``) is
    ``raw_dataset`` or, if not given, the dataset's folder in ``nnUNet_raw``."""
    first = summaries[0].folds[0].job
    dataset_json = json.loads((first.model_folder / "dataset.json").read_text())
    if raw_dataset is None and os.environ.get("nnUNet_raw"):
        raw_dataset = Path(os.environ["nnUNet_raw"]) / first.model_root.name
    if "file_ending" not in dataset_json:
        return f"{HEADING}\n\nNo figures: {first.model_folder / 'dataset.json'} names no file_ending.\n", ""
    ending = dataset_json["file_ending"]
    models = segmentation_models(summaries, baselines, split, out_dir, ending)
    references = references_folder(summaries, split, raw_dataset)
    cases = sorted({case for m in models for case in m.files})
    images = raw_dataset / ("imagesTs" if split == "test" else "imagesTr") if raw_dataset is not None else None
    files = SplitFiles(split, setting.split_title(split),
                       {c: references / f"{c}{ending}" for c in cases} if references is not None else {},
                       {c: images / f"{c}_0000{ending}" for c in cases} if images is not None else {})
    colours = {s.variant.label: colour(i) for i, s in enumerate(summaries)}
    return segmentation_section(models, files, dataset_json, out_dir, figures, colours)


def write_report(summaries: list[VariantSummary], comparisons: list[Comparison], baselines: list[str],
                 out_dir: Path, title: str, best_configuration: dict | None = None,
                 failures: list[str] | None = None, not_run: list[str] | None = None,
                 primary: PrimaryComparison = PrimaryComparison(),
                 recommended: list[CaseScore] | None = None, dataset_notes: list[str] | None = None,
                 figures: str = "key", raw_dataset: Path | None = None) -> str:
    """``benchmark.md`` top-down: the verdict, the key table (the primary split), the overview and paired figures,
    "What the models segment" (``figures``: none | key | all, on the primary split), the other tables and
    comparisons, the per-case plots, nnU-Net's best configuration, failed and missing runs, then Methods
    (data, machine, load, statistics, power, self-configuration, figures); and its CSVs and PNGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [variant_row(s, baselines) for s in summaries]
    differences = [difference(c) for c in comparisons]
    metrics = [metric(key) for key in metrics_of(rows)] or [DICE]
    splits = splits_of(rows)
    parts, methods = [], ""
    if rows:
        setting = benchmark_setting(summaries, baselines)
        split = reading_choice(metrics, splits, (primary.split, primary.metric))[0]
        paired = write_paired_figure(summaries, rows, baselines, primary, setting, out_dir)
        section, figure_methods = segmentation_part(summaries, baselines, split, setting, out_dir, figures,
                                                    raw_dataset)
        parts += [verdict(title, rows, setting, metrics, splits, differences, (primary.split, primary.metric)),
                  key_table(rows, setting, metrics, split), "![Benchmark](benchmark.png)", "",
                  *([paired, ""] if paired else []), *([section] if section else []),
                  results_sections(rows, setting, metrics, splits, skip=split),
                  seed_section(summaries, metrics, setting), outcomes_section(summaries, setting),
                  hd95_section(summaries, setting), rank_section(summaries, primary, setting)]
        parts += comparisons_sections(differences, metrics, setting)
        parts += ["Per-case scores: `cases.csv`; comparisons: `comparisons.csv`; per model, split, fold and class: "
                  "`benchmark.csv`.", ""]
        parts += [f"![{m.label} per case, {setting.split_title(split)}]({per_case_file(m, split)})"
                  for split in splits for m in metrics] + [""]
        methods = methods_section(rows, setting, splits, [
            statistics_note(primary), power_line(comparisons, setting),
            *(["**Self-configuration.** " + " ".join(f"{line}." for line in dataset_notes)] if dataset_notes else []),
            figure_methods])
    else:
        parts += [f"## {title}", "", "No finished runs to report yet.", ""]
    section = best_configuration_section(best_configuration, recommended)
    if section:
        parts += [section]
    if failures:
        parts += ["### Failed runs", ""] + [f"- {failure}" for failure in failures] + [""]
    if not_run:
        parts += ["### Not run yet", ""] + [f"- {line}" for line in not_run] + [""]
    if methods:
        parts += [methods]
    markdown = "\n".join(parts)
    write_text_atomically(out_dir / "benchmark.md", markdown)
    write_scores_csv(rows, metrics, out_dir / "benchmark.csv")
    write_differences_csv(differences, out_dir / "comparisons.csv")
    if rows:
        save(overview_figure(rows, setting, metrics, splits), out_dir / "benchmark.png")
        for split in splits:
            for m in metrics:
                save(per_case_figure(rows, setting, m, split), out_dir / per_case_file(m, split))
    return markdown
