"""Benchmark pieces that need no training: the matrix, the emitted scheduler scripts (comparisons:
test_benchmark_statistics.py; fold states and resume: test_benchmark_resume.py)."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nnunet_25d.benchmark.cases import case_id
from nnunet_25d.benchmark.collect import class_names, validation_seconds_per_case
from nnunet_25d.benchmark.emit import array_script, command_list
from nnunet_25d.benchmark.matrix import Variant, build_jobs, parse_variant
from nnunet_25d.benchmark.resources import Resources
from nnunet_25d.benchmark.statistics import mean_std


def test_mean_std_over_folds():
    assert mean_std([0.5, 0.7, float("nan")]) == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))
    assert mean_std([0.4]) == (0.4, 0.0)


def test_parse_variant():
    assert parse_variant("nnUNetTrainer25D") == ("nnUNetTrainer25D", "2d")
    assert parse_variant("nnUNetTrainer:3d_fullres") == ("nnUNetTrainer", "3d_fullres")
    with pytest.raises(ValueError, match="TRAINER"):
        parse_variant(":2d")


def test_class_names_and_case_ids():
    assert class_names({"labels": {"background": 0, "tube": 1, "nodule": 2}}) == {"1": "tube", "2": "nodule"}
    assert case_id("/x/validation/case_007.nii.gz") == "case_007"


def test_validation_time_per_case_from_the_training_log(tmp_path):
    (tmp_path / "training_log_2026_1_1_00_00_00.txt").write_text(
        "2026-01-01 00:00:00.000000: Epoch 0 \n"
        "2026-01-01 00:01:00.000000: predicting case_001 \n"
        "2026-01-01 00:01:03.000000: predicting case_002 \n"
        "2026-01-01 00:01:08.000000: Validation complete \n")
    assert validation_seconds_per_case(tmp_path) == pytest.approx(4.0)


def _jobs(tmp_path: Path):
    variants = [Variant("nnUNetTrainer", "2d", (2, 5)), Variant("nnUNetTrainer25D", "2d", (2, 5)),
                Variant("nnUNetTrainer", "3d_fullres", (2, 5))]
    return build_jobs(variants, [0, 1, 2, 3, 4], "525", tmp_path / "Dataset525_X")


def test_emitted_commands_list_every_variant_and_fold_once(tmp_path):
    jobs = _jobs(tmp_path)
    commands = command_list(jobs, ["-d", "525"], python="python")
    assert len(commands) == len(set(commands)) == 15
    for index, (job, command) in enumerate(zip(jobs, commands)):
        assert command == f"python -m nnunet_25d.cli benchmark -d 525 --task {index}  # {job.name}"


def test_more_than_one_gpu_is_passed_to_nnunet():
    from nnunet_25d.benchmark.matrix import Job

    job = Job(Variant("nnUNetTrainer", "2d"), 0, "1", Path("/r"))
    assert job.train_args("cuda", num_gpus=2)[-3:] == ["--npz", "-num_gpus", "2"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_slurm_array_script_is_valid_bash_with_one_task_per_job(tmp_path):
    jobs = _jobs(tmp_path)
    env = {"nnUNet_raw": "/data/raw", "nnUNet_results": "/data/res"}
    script = array_script(jobs, Resources(gpus=1), ["-d", "525"], env, tmp_path / "logs", prefix=str(tmp_path),
                          python="echo")
    path = tmp_path / "array.sbatch"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    assert "#SBATCH --array=0-14" in script and "#SBATCH --gres=gpu:1" in script
    assert "--gres" not in array_script(jobs, Resources(gpus=0), ["-d", "525"], {}, tmp_path)
    for index, job in enumerate(jobs):
        assert script.count(f"#  {index:>3}: {job.variant.trainer_name} {job.variant.configuration} "
                            f"fold {job.fold}\n") == 1
    # array task 7 runs the task entry with index 7 (python replaced by echo: the script prints what it runs)
    ran = subprocess.run(["bash", str(path)], env={"SLURM_ARRAY_TASK_ID": "7", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["-m", "nnunet_25d.cli", "benchmark", "-d", "525", "--task", "7"]


def test_ensemble_folder_names_follow_nnunet_and_stay_short_enough_for_a_file_system():
    from nnunet_25d.view_fusion.ensemble_cv import ensemble_name

    pair = ["nnUNetTrainer__nnUNetPlans__2d", "nnUNetTrainer25D__nnUNetPlans__2d"]
    assert ensemble_name(pair, [0, 1]) == "ensemble___" + "___".join(pair) + "___0_1"
    four = [f"nnUNetTrainer25D{view}_5epochs_20iters__nnUNetPlans__3d_fullres" for view in "ABCD"]
    long_name = ensemble_name(four, [0])
    assert len(long_name) <= 200 and long_name != ensemble_name(four[:3] + ["other"], [0])


def test_baselines_default_to_the_nnunet_ones_in_the_matrix_and_must_be_in_it():
    from argparse import Namespace

    from nnunet_25d.benchmark.command import baselines_from_args

    variants = [Variant("nnUNetTrainer", "2d"), Variant("nnUNetTrainer25D", "2d"),
                Variant("nnUNetTrainer25DAniso", "3d_fullres")]
    assert baselines_from_args(Namespace(baselines=None), variants) == ["nnUNetTrainer:2d"]
    chosen = Namespace(baselines=["nnUNetTrainer25DAniso", "nnUNetTrainer:2d"])
    assert baselines_from_args(chosen, variants) == ["nnUNetTrainer25DAniso:3d_fullres", "nnUNetTrainer:2d"]
    with pytest.raises(SystemExit, match="not in the matrix"):
        baselines_from_args(Namespace(baselines=["nnUNetTrainer:3d_fullres"]), variants)


def test_the_recommendation_runs_as_nnunet_prints_it(tmp_path):
    from nnunet_25d.benchmark.recommended import recommended_of
    from nnunet_25d.benchmark.testset import EnsemblePrediction, TestSet

    test_set = TestSet(tmp_path / "imagesTs", tmp_path / "labelsTs", ".nii.gz", ("t0",))
    models = (("nnUNetTrainer", "2d"), ("nnUNetTrainer25D", "2d"))
    predictions = [EnsemblePrediction(Variant(t, c), (0, 1), tmp_path / f"{t}__{c}", tmp_path / "out" / f"{t}_{c}",
                                      test_set, "999") for t, c in models]
    best = {"postprocessing_file": "/r/ensembles/x/postprocessing.pkl", "some_plans_file": "/r/x/plans.json",
            "selected_model_or_models": [{"trainer": "nnUNetTrainer25D", "configuration": "2d"},
                                         {"trainer": "nnUNetTrainer", "configuration": "2d"}]}
    recommended = recommended_of({"best_model_or_ensemble": best}, predictions, tmp_path / "report")
    assert recommended.label == "nnUNetTrainer25D 2d + nnUNetTrainer 2d"
    names, commands = zip(*recommended.commands())
    assert names == ("ensemble_recommended", "postprocess_recommended", "evaluate_recommended")
    assert commands[0] == ["nnUNetv2_ensemble", "-i", str(predictions[1].folder), str(predictions[0].folder), "-o",
                           str(tmp_path / "report" / "recommended" / "ensemble"), "-np", "1"]
    dataset_json = str(predictions[1].folder / "dataset.json")  # the first member's, as nnU-Net's printout
    assert commands[1] == ["nnUNetv2_apply_postprocessing", "-i", str(tmp_path / "report" / "recommended" /
                                                                      "ensemble"), "-o",
                           str(recommended.final), "-pp_pkl_file", "/r/ensembles/x/postprocessing.pkl", "-np", "1",
                           "-plans_json", "/r/x/plans.json", "-dataset_json", dataset_json]
    assert commands[2] == ["nnUNetv2_evaluate_folder", str(tmp_path / "labelsTs"), str(recommended.final),
                           "-djfile", dataset_json, "-pfile", "/r/x/plans.json", "-o",
                           str(recommended.final / "summary.json"), "-np", "1"]
    single = {**best, "selected_model_or_models": best["selected_model_or_models"][:1]}
    alone = recommended_of({"best_model_or_ensemble": single}, predictions, tmp_path / "report")
    assert [name for name, _ in alone.commands()] == ["postprocess_recommended", "evaluate_recommended"]
    assert alone.commands()[0][1][2] == str(predictions[1].folder)  # its own test-set prediction, postprocessed
    missing = {**best, "selected_model_or_models": [{"trainer": "nnUNetTrainer25DFusion", "configuration": "2d"}]}
    assert recommended_of({"best_model_or_ensemble": missing}, predictions, tmp_path) is None
    assert recommended_of(None, predictions, tmp_path) is None
