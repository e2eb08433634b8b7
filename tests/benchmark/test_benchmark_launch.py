"""Clusters: `--emit slurm` scripts, the task entry's resources, `--launch slurm` (submitit against a stand-in sbatch)
and `--launch local` (submitit's local executor, end to end on the tiny dataset)."""
from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.benchmark.benchmark_tree import LABELS, write_splits
from tests.conftest import TINY_ID

from nnunet_25d.benchmark.emit import activation_lines, write_slurm
from nnunet_25d.benchmark.launch import BenchmarkTask, run_bounded
from nnunet_25d.benchmark.matrix import Variant, build_jobs
from nnunet_25d.benchmark.resources import Resources, time_minutes
from nnunet_25d.benchmark.task import data_augmentation_workers, granted_cpus, task_job

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
RESOURCES = Resources(time="2-00:00:00", memory="32G", cpus=6, gpus=2, partition="gpu", account="lab",
                      array_parallelism=3)
FLAGS = ["#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=2-00:00:00", "#SBATCH --mem=32G",
         "#SBATCH --cpus-per-task=6"]


def _jobs(tmp_path: Path):
    variants = [Variant("nnUNetTrainer", "2d"), Variant("nnUNetTrainer25D", "2d")]
    return build_jobs(variants, [0, 1, 2], "999", tmp_path / "results" / "Dataset999_Toy")


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def fake_slurm(folder: Path) -> Path:
    """A stand-in ``sbatch`` (keeps each submitted script and its arguments, answers job ids 101, 102, ...) and
    ``srun`` (submitit only checks that it exists). Returns the folder of the records."""
    records = folder / "submitted"
    records.mkdir(parents=True)
    _executable(folder / "bin" / "sbatch", f"""#!/bin/bash
n=$(( $(ls {records} | grep -c args) + 101 ))
printf '%s\\n' "$@" > {records}/$n.args
cp "${{@: -1}}" {records}/$n.sbatch
if [[ " $* " == *" --parsable "* ]]; then echo "$n"; else echo "Submitted batch job $n"; fi
""")
    _executable(folder / "bin" / "srun", "#!/bin/bash\nexit 1\n")
    return records


@needs_bash
def test_emitted_scripts_activate_the_environment_and_carry_the_resource_flags(tmp_path):
    jobs = _jobs(tmp_path)
    message = write_slurm(jobs, RESOURCES, tmp_path / "out", ["-d", "999"], ["-d", "999", "--gpus", "2"],
                          ["nnUNetv2_plan_and_preprocess", "-d", "999", "-c", "2d", "-np", "1"])
    scripts = {name: (tmp_path / "out" / f"benchmark_{name}.sbatch").read_text()
               for name in ("preprocess", "array", "collect")}
    for name, text in scripts.items():
        (tmp_path / f"{name}.sh").write_text(text)
        assert subprocess.run(["bash", "-n", str(tmp_path / f"{name}.sh")]).returncode == 0, name
        assert "set -euo pipefail" in text and "\n".join(activation_lines()) in text
        assert all(flag in text.splitlines() for flag in FLAGS), name
        assert ("#SBATCH --gres=gpu:2" in text) == (name in ("array", "collect"))  # the report job predicts
    assert "#SBATCH --array=0-5%3" in scripts["array"] and "#SBATCH --kill-on-invalid-dep=yes" in scripts["array"]
    assert scripts["array"].rstrip().endswith('"${BENCHMARK[@]}" --task "$SLURM_ARRAY_TASK_ID"')
    nnunet = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    assert f"{nnunet} -d 999 -c 2d -np 6" in scripts["preprocess"]  # the environment's nnU-Net, -np = CPUs
    assert scripts["collect"].rstrip().endswith(f"{sys.executable} -m nnunet_25d.cli benchmark -d 999 --finalize")
    assert f"bash {tmp_path / 'out' / 'submit_benchmark.sh'}" in message


@needs_bash
def test_the_submit_script_runs_the_array_only_after_preprocessing_and_collects_after_any(tmp_path):
    write_slurm(_jobs(tmp_path), RESOURCES, tmp_path / "out", ["-d", "999"], ["-d", "999"], ["nnUNetv2_preprocess"])
    records = fake_slurm(tmp_path)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    subprocess.run(["bash", str(tmp_path / "out" / "submit_benchmark.sh")], env=env, check=True, capture_output=True)
    calls = [(records / f"{n}.args").read_text().split() for n in (101, 102, 103)]
    out = tmp_path / "out"
    assert calls == [["--parsable", str(out / "benchmark_preprocess.sbatch")],
                     ["--parsable", "--dependency=afterok:101", str(out / "benchmark_array.sbatch")],
                     ["--dependency=afterany:102", str(out / "benchmark_collect.sbatch")]]


@needs_bash
@pytest.mark.parametrize("kind", ["venv", "plain"])
def test_the_activation_puts_the_benchmarks_python_first(tmp_path, kind):
    prefix = tmp_path / "env"
    python = _executable(prefix / "bin" / "python", "#!/bin/sh\necho env-python\n")
    if kind == "venv":  # a venv's activate script puts its bin first and sets VIRTUAL_ENV
        (prefix / "bin" / "activate").write_text(f'export VIRTUAL_ENV={prefix}\nexport PATH="{prefix}/bin:$PATH"\n')
    script = "\n".join(["set -euo pipefail", *activation_lines(str(prefix), str(python)),
                        'echo "${VIRTUAL_ENV:-none}"', "python"])
    ran = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         check=True)
    assert ran.stdout.split() == [str(prefix) if kind == "venv" else "none", "env-python"]


def test_data_augmentation_workers_follow_the_cpus_granted(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert granted_cpus(2) == 6 and data_augmentation_workers(granted_cpus(2)) == 5
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert data_augmentation_workers(granted_cpus()) == 1  # never 0: nnU-Net's planner crashes on 0
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert granted_cpus(4) == 4
    assert granted_cpus() == len(os.sched_getaffinity(0))


def test_time_limits_as_sbatch_writes_them():
    assert [time_minutes(t) for t in ("48:00:00", "2-00:00:00", "90", "1:30", "1-12", "0:0:30")] == \
        [2880, 2880, 90, 2, 2160, 1]
    with pytest.raises(ValueError, match="48:00:00"):
        time_minutes("2 days")


def test_a_task_index_outside_the_matrix_names_the_range(tmp_path):
    with pytest.raises(SystemExit, match="tasks 0-5"):
        task_job(_jobs(tmp_path), 6, 1)
    assert task_job(_jobs(tmp_path), 4, 2).train_args("cuda")[-3:] == ["--npz", "-num_gpus", "2"]


def test_preemption_requeues_the_same_task():
    task = BenchmarkTask(["-d", "999", "--folds", "0"])
    again = pickle.loads(pickle.dumps(task.checkpoint(3)))  # submitit pickles it for the requeued job
    assert again.function == task and again.args == (3,) and again.kwargs == {}


def _toy_nnunet_folders(tmp_path: Path, monkeypatch) -> None:
    """A dataset with splits and dataset.json but no plans yet: the launch must preprocess first."""
    dataset = tmp_path / "preprocessed" / "Dataset999_Toy"
    write_splits(dataset, [["c0"], ["c1"]])
    (dataset / "dataset.json").write_text(json.dumps({"labels": LABELS}))
    for name in ("raw", "preprocessed", "results"):
        (tmp_path / name).mkdir(exist_ok=True)
        monkeypatch.setenv(f"nnUNet_{name}", str(tmp_path / name))


def test_slurm_launch_submits_preprocessing_then_the_array_then_the_report(tmp_path, monkeypatch, capsys):
    from nnunet_25d import cli

    _toy_nnunet_folders(tmp_path, monkeypatch)
    records = fake_slurm(tmp_path / "slurm")
    monkeypatch.setenv("PATH", f"{tmp_path / 'slurm' / 'bin'}:{os.environ['PATH']}")
    matrix = ["-d", "999", "--variants", "nnUNetTrainer:2d", "--folds", "0", "1", "--output", str(tmp_path / "out")]
    cli.main(["benchmark", *matrix, "--launch", "slurm", "--partition", "gpu", "--account", "lab", "--time", "1-00",
              "--mem", "32G", "--cpus", "6", "--gpus", "2", "--array-parallelism", "1"])
    pre, array, collect = ((records / f"{n}.sbatch").read_text().splitlines() for n in (101, 102, 103))
    common = ["#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=1440", "#SBATCH --mem=32G",
              "#SBATCH --cpus-per-task=6"]
    for script in (pre, array, collect):
        assert all(flag in script for flag in common)
    assert "#SBATCH --job-name=nnunet25d-preprocess" in pre and not any("gpus" in line for line in pre)
    assert {"#SBATCH --array=0-1%1", "#SBATCH --gpus-per-node=2", "#SBATCH --dependency=afterok:101",
            "#SBATCH --kill-on-invalid-dep=yes"} <= set(array)
    assert {"#SBATCH --dependency=afterany:102", "#SBATCH --gpus-per-node=2"} <= set(collect)  # it predicts
    tasks = sorted((tmp_path / "out" / "submitit").glob("102_*_submitted.pkl"))
    submitted = [pickle.loads(path.read_bytes()) for path in tasks]
    assert [s.args for s in submitted] == [(0,), (1,)]
    assert submitted[0].function.arguments[-4:] == ["--cpus", "6", "--gpus", "2"]
    assert "report         job 103" in capsys.readouterr().out


@pytest.mark.parametrize("flags, fix", [(["--dry-run"], "add --task I"),
                                         (["--collect-only", "--launch", "local"], "without --emit or --launch"),
                                         (["--finalize", "--emit", "slurm"], "--finalize trains nothing"),
                                         (["--emit", "slurm", "--launch", "slurm"], "exclude each other")])
def test_flags_that_do_not_go_together_name_the_fix(tmp_path, monkeypatch, flags, fix):
    from nnunet_25d.benchmark.command import run_benchmark
    from nnunet_25d.cli import build_parser

    _toy_nnunet_folders(tmp_path, monkeypatch)
    args = build_parser().parse_args(["benchmark", "-d", "999", "--variants", "nnUNetTrainer:2d", *flags])
    with pytest.raises(SystemExit, match=fix):
        run_benchmark(args)
    assert not (tmp_path / "results" / "Dataset999_Toy").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("flag, value", [("--account", "lab\ntouch {marker}"), ("--partition", "gpu;touch {marker}"),
                                         ("--account", "lab $(touch {marker})"), ("--partition", "gpu\r")])
@pytest.mark.parametrize("how", ["--emit", "--launch"])
def test_values_for_sbatch_lines_with_newlines_or_shell_characters_are_refused(tmp_path, monkeypatch, capsys, flag,
                                                                               value, how):
    from nnunet_25d import cli

    _toy_nnunet_folders(tmp_path, monkeypatch)
    records = fake_slurm(tmp_path / "slurm")
    monkeypatch.setenv("PATH", f"{tmp_path / 'slurm' / 'bin'}:{os.environ['PATH']}")
    marker = tmp_path / "ran"
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["benchmark", "-d", "999", "--variants", "nnUNetTrainer:2d", "--folds", "0", "--output", str(out),
                  how, "slurm", flag, value.format(marker=marker)])
    assert exit_.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"{flag} " in error[0] and "refused" in error[0] and "#SBATCH" in error[0], error
    assert not marker.exists() and not list(out.rglob("*.sbatch")) and not list(records.iterdir())


def test_an_output_folder_with_a_newline_is_not_written_into_sbatch_lines(tmp_path):
    from nnunet_25d.errors import UserError

    with pytest.raises(UserError, match="refused"):
        write_slurm(_jobs(tmp_path), RESOURCES, tmp_path / "out\n#SBATCH --wrap=x", ["-d", "999"], ["-d", "999"])
    assert not list(tmp_path.rglob("*.sbatch"))


ARGS = ["-d", str(TINY_ID), "--variants", "nnUNetTrainer:2d", "--folds", "0", "1", "--schedule", "2x5",
        "-device", "cpu", "--no-find-best"]


def test_local_launch_trains_and_collects_the_report_after_a_failed_task(nnunet, tiny_dataset, tmp_path):
    broken = nnunet.model_folder(tiny_dataset, "nnUNetTrainer_2epochs_5iters") / "fold_1"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "checkpoint_latest.pth").write_bytes(b"not a checkpoint")  # task 1 resumes from it and fails
    out = tmp_path / "report"
    result = nnunet.run("nnunet25d", "benchmark", *ARGS, "--output", str(out), "--launch", "local", check=False)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    latest = broken / "checkpoint_latest.pth"
    assert f"task 1 (nnUNetTrainer 2d fold 1) failed: RuntimeError: nnUNetTrainer 2d fold 1: checkpoint {latest} is " \
           f"truncated or corrupted (not a readable torch file): delete it and run the benchmark again: it trains " \
           f"the fold from the start" in result.stderr, "not resumed: nnU-Net would fail on it on every rerun"
    summary = json.loads((nnunet.model_folder(tiny_dataset, "nnUNetTrainer_2epochs_5iters") / "fold_0" / "validation"
                          / "summary.json").read_text())
    validated = {Path(case["reference_file"]).name.removesuffix(".nii.gz") for case in summary["metric_per_case"]}
    rows = list(csv.DictReader(open(out / "cases.csv")))
    assert {row["case"] for row in rows} == validated and {row["fold"] for row in rows} == {"0"}
    assert f"nnUNetTrainer 2d fold 1: checkpoint {latest} is truncated" in (out / "benchmark.md").read_text()
    logs = "".join(path.read_text() for path in (out / "submitit").glob("*_log.out"))
    assert "nnUNet_n_proc_DA=1" in logs  # this machine's 2 CPUs


def test_the_report_job_of_a_local_launch_predicts_the_test_set_of_finished_variants(nnunet, trained_slab_model,
                                                                                      tmp_path):
    """The fold is trained already (the task skips it); the report job predicts imagesTs with it and scores it."""
    out = tmp_path / "report"
    nnunet.run("nnunet25d", "benchmark", "-d", str(TINY_ID), "--variants", "nnUNetTrainer25D", "--folds", "0",
               "--schedule", "10x25", "-device", "cpu", "--no-find-best", "--output", str(out), "--launch", "local")
    predicted = out / "test_predictions" / f"{trained_slab_model.name}" / "summary.json"
    means = json.loads(predicted.read_text())["mean"]
    test_rows = [r for r in csv.DictReader(open(out / "benchmark.csv")) if r["split"] == "test"]
    assert {r["class"]: float(r["dice"]) for r in test_rows} == pytest.approx(
        {"tube": means["1"]["Dice"], "nodule": means["2"]["Dice"]}, abs=1e-4)
    assert "not predicted" not in (out / "benchmark.md").read_text()


def test_local_launch_stops_before_any_task_when_preprocessing_fails(nnunet, tmp_path):
    broken = nnunet.raw / "Dataset979_Broken"
    broken.mkdir(parents=True)
    (broken / "dataset.json").write_text(json.dumps({"labels": LABELS}))  # no images, no channel names
    out = tmp_path / "report"
    result = nnunet.run("nnunet25d", "benchmark", "-d", "979", "--variants", "nnUNetTrainer:2d", "--folds", "0",
                        "-device", "cpu", "--output", str(out), "--launch", "local", check=False)
    assert result.returncode == 1
    assert "preprocessing failed, no task was started: RuntimeError: " in result.stderr
    assert "nnUNetv2_plan_and_preprocess failed (exit 1)" in result.stderr
    assert len(list((out / "submitit").glob("*_submitted.pkl"))) == 1  # the preprocessing job only
    assert not (out / "benchmark.md").exists()


class CountingExecutor:
    """Stands in for submitit's local executor: records how many submitted tasks were still running at each
    submission (a task ends when its result is asked for)."""

    def __init__(self):
        self.running, self.at_submission = set(), []

    def submit(self, task, index):
        self.at_submission.append(len(self.running))
        self.running.add(index)
        executor = self

        class Job:
            paths = type("Paths", (), {"stderr": "log"})

            def result(self):
                executor.running.discard(index)
                if index == 1:
                    raise RuntimeError("boom")

        return Job()


@pytest.mark.parametrize("at_once, most", [(1, 0), (2, 1)])
def test_local_tasks_run_at_most_n_at_once(tmp_path, at_once, most):
    """Issue 22 (d): submitit's local executor started every task at once."""
    jobs = build_jobs([Variant("nnUNetTrainer", "2d")], [0, 1, 2, 3], "999", tmp_path)
    executor = CountingExecutor()
    failures = run_bounded(executor, BenchmarkTask([]), jobs, at_once)
    assert max(executor.at_submission) == most and len(executor.at_submission) == 4 and not executor.running
    assert failures == ["task 1 (nnUNetTrainer 2d fold 1) failed: boom (submitit log: log)"]
