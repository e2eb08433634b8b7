"""Issue #5's numbers in one run: each view alone, the 3-view fusion, multi-scale ensembles, postprocessing.

Trains (fold 0, same schedule, one after the other) nnU-Net's 2d and 3d_fullres, nnUNetTrainer25D and the three
view trainers; predicts the synthetic test set with `nnUNetv2_predict --save_probabilities`; fuses with
`nnUNetv2_ensemble`; determines postprocessing on fold 0's cross-validation (`nnunet25d ensemble-cv`, nnU-Net's
`determine_postprocessing`) and applies it with `nnUNetv2_apply_postprocessing`; scores everything with
`nnUNetv2_evaluate_folder`. Also runs nnU-Net's find_best_configuration over the six models.

    python benchmarks/multi_view.py --workdir bench_views --schedule 10x25
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nnunet_25d.benchmark.comparison import ModelResult, ModelSpec, dice_from_summary, labels_by_value, markdown_table
from nnunet_25d.benchmark.demo import add_comparison_arguments, train_and_test
from nnunet_25d.view_fusion.ensemble_cv import ensemble_name
from nnunet_25d.trainers.variants import schedule_name

MODELS = (
    ("nnU-Net 2d", "nnUNetTrainer", "2d"),
    ("nnU-Net 3d_fullres", "nnUNetTrainer", "3d_fullres"),
    ("2.5D slab (2d plan)", "nnUNetTrainer25D", "2d"),
    ("view: axial", "nnUNetTrainer25DAxial", "3d_fullres"),
    ("view: coronal", "nnUNetTrainer25DCoronal", "3d_fullres"),
    ("view: sagittal", "nnUNetTrainer25DSagittal", "3d_fullres"),
)
FUSIONS = (
    ("3-view fusion", ("view: axial", "view: coronal", "view: sagittal")),
    ("3 views + 3d_fullres", ("view: axial", "view: coronal", "view: sagittal", "nnU-Net 3d_fullres")),
    ("multi-scale: 2d + 2.5D + 3d_fullres", ("nnU-Net 2d", "2.5D slab (2d plan)", "nnU-Net 3d_fullres")),
)


def evaluate(runner, paths, folder: Path, plans_source: Path, name: str) -> dict[str, float]:
    summary = folder / "summary.json"
    runner.run(["nnUNetv2_evaluate_folder", str(paths.raw / paths.name / "labelsTs"), str(folder), "-djfile",
                str(plans_source / "dataset.json"), "-pfile", str(plans_source / "plans.json"), "-o", str(summary),
                "-np", "1"], f"evaluate_{name}")
    dataset_json = json.loads((paths.raw / paths.name / "dataset.json").read_text())
    return dice_from_summary(summary, labels_by_value(dataset_json))


def fuse(runner, paths, work: Path, name: str, members: list[ModelResult], fold: int) -> tuple[ModelResult, ...]:
    """(fused, fused + postprocessing) results; s/case = sum of the members' + the ensembling's per case."""
    slug = name.replace(" ", "_").replace(":", "").replace("+", "and")
    folders = [work / "predictions" / f"{m.trainer}__{m.configuration}" for m in members]
    out = work / "fusions" / slug
    n_cases = len(list(folders[0].glob("*.npz")))
    wall = runner.run(["nnUNetv2_ensemble", "-i", *map(str, folders), "-o", str(out), "-np", "1"], f"ensemble_{slug}")
    per_case = sum(m.seconds_per_case for m in members) + wall / max(n_cases, 1)
    fused = ModelResult(name, " + ".join(m.trainer for m in members), "ensemble",
                        test_dice=evaluate(runner, paths, out, folders[0], slug), seconds_per_case=per_case)

    models = [f"{m.trainer}:{m.configuration}" for m in members]
    runner.run([sys.executable, "-m", "nnunet_25d.cli", "ensemble-cv", "-d", paths.dataset_id, "--models", *models,
                "-f", str(fold)], f"ensemble_cv_{slug}", training=False)
    cv_folder = paths.results / paths.name / "ensembles" / ensemble_name(
        [f"{m.trainer}__nnUNetPlans__{m.configuration}" for m in members], [fold])
    processed = work / "fusions" / f"{slug}_pp"
    runner.run(["nnUNetv2_apply_postprocessing", "-i", str(out), "-o", str(processed), "-pp_pkl_file",
                str(cv_folder / "postprocessing.pkl"), "-np", "1", "-plans_json", str(folders[0] / "plans.json"),
                "-dataset_json", str(folders[0] / "dataset.json")], f"postprocess_{slug}")
    post = ModelResult(f"{name} + postprocessing", fused.trainer, "ensemble",
                       test_dice=evaluate(runner, paths, processed, folders[0], f"{slug}_pp"),
                       seconds_per_case=per_case)
    return fused, post


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_comparison_arguments(parser)
    args = parser.parse_args()
    epochs, iterations = args.schedule
    started = time.perf_counter()
    specs = [ModelSpec(label, schedule_name(trainer, epochs, iterations), configuration, epochs)
             for label, trainer, configuration in MODELS]
    singles, _, runner, paths, work = train_and_test(args, specs, save_probabilities=True)
    by_label = {r.label: r for r in singles}
    fused = []
    for name, members in FUSIONS:
        fused += fuse(runner, paths, work, name, [by_label[m] for m in members], args.fold)

    runner.run([sys.executable, "-m", "nnunet_25d.benchmark.find_best", paths.dataset_id, "--models",
                *[f"{s.trainer}:{s.configuration}" for s in specs], "--folds", str(args.fold)], "find_best")
    best = json.loads((paths.results / paths.name / "inference_information.json").read_text())
    chosen = " + ".join(f"{m['trainer']} {m['configuration']}"
                        for m in best["best_model_or_ensemble"]["selected_model_or_models"])

    baseline = by_label["nnU-Net 2d"]
    table = markdown_table(singles + fused, baseline)
    text = (f"## {paths.name}: views, fusion and ensembles, {epochs} epochs x {iterations} iterations, fold "
            f"{args.fold}\n\n{table}\n\nFusion s/case: the members' prediction time plus nnUNetv2_ensemble's, per "
            f"case. Postprocessing determined on fold {args.fold}'s cross-validation of the fused models.\n\n"
            f"nnU-Net find_best_configuration over the six models (fold {args.fold}): **{chosen}**, CV Dice "
            f"{best['best_model_or_ensemble']['result_on_crossval_pre_pp']:.4f} "
            f"({best['best_model_or_ensemble']['result_on_crossval_post_pp']:.4f} with postprocessing)\n")
    (work / "report").mkdir(parents=True, exist_ok=True)
    (work / "report" / "multi_view.md").write_text(text)
    print("\n" + text)
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
