"""Scripts for people who submit by hand: a SLURM job array (one task per variant x fold) with its preprocessing
and collect jobs, or a plain command list. Every task calls the task entry with its index (see ``task.py``)."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from nnunet_25d.benchmark.matrix import Job
from nnunet_25d.benchmark.resources import Resources, check_script_text
from nnunet_25d.benchmark.runner import NNUNET_FOLDERS, trainer_lookup_path

TASK_ID = '"$SLURM_ARRAY_TASK_ID"'


def activation_lines(prefix: str = sys.prefix, executable: str = sys.executable) -> list[str]:
    """Activate the environment the benchmark runs in: its ``bin/activate`` (venv), else its python's folder first
    on PATH (conda, pyenv, system Python)."""
    activate = Path(prefix) / "bin" / "activate"
    if activate.is_file():
        return ["set +u  # activation scripts may read unset variables",
                f"source {shlex.quote(str(activate))}", "set -u"]
    return [f'export PATH={shlex.quote(str(Path(executable).parent))}:"$PATH"']


def environment_lines(env: dict[str, str]) -> list[str]:
    lines = [f"export {name}={shlex.quote(env[name])}" for name in NNUNET_FOLDERS if env.get(name)]
    return lines + [f"export nnUNet_extTrainer={shlex.quote(trainer_lookup_path(env.get('nnUNet_extTrainer')))}"]


def nnunet_script(name: str, executable: str = sys.executable) -> str:
    """An nnU-Net console script of the environment the benchmark runs in (installed next to its python)."""
    script = Path(executable).parent / name
    return str(script) if script.is_file() else name


def with_processes(command: list[str], processes: int) -> list[str]:
    """nnU-Net preprocessing with ``-np`` set to the CPUs the job is granted."""
    if "-np" not in command:
        return command + ["-np", str(processes)]
    index = command.index("-np")
    return command[:index + 1] + [str(processes)] + command[index + 2:]


def benchmark_command(arguments: list[str], python: str = sys.executable) -> list[str]:
    return [python, "-m", "nnunet_25d.cli", "benchmark", *arguments]


def command_list(jobs: list[Job], task_arguments: list[str], python: str = sys.executable) -> list[str]:
    """One line per job: the task entry with its index (it decides skip/validate/resume/train when it runs)."""
    command = benchmark_command(task_arguments, python)
    return [f"{shlex.join([*command, '--task', str(index)])}  # {job.name}" for index, job in enumerate(jobs)]


def header(name: str, resources: Resources, output: str, gpus: bool = False) -> list[str]:
    check_script_text("--output", output)
    return ["#!/bin/bash", f"#SBATCH --job-name={name}", *resources.sbatch_options(gpus), f"#SBATCH --output={output}"]


def prologue(env: dict[str, str], prefix: str, python: str) -> list[str]:
    return ["set -euo pipefail", *activation_lines(prefix, python), *environment_lines(env), ""]


def array_script(jobs: list[Job], resources: Resources, task_arguments: list[str], env: dict[str, str],
                 log_dir: Path, prefix: str = sys.prefix, python: str = sys.executable) -> str:
    """``sbatch`` script: array task i runs task i of the matrix; preemption requeues it (nnU-Net resumes)."""
    throttle = f"%{resources.array_parallelism}" if resources.array_parallelism else ""
    lines = header("nnunet25d-benchmark", resources, f"{log_dir}/%x_%A_%a.out", gpus=True)
    lines += [f"#SBATCH --array=0-{len(jobs) - 1}{throttle}", "#SBATCH --requeue",
              "#SBATCH --kill-on-invalid-dep=yes",  # cancelled, not pending forever, if preprocessing fails
              *prologue(env, prefix, python), "# task: variant fold"]
    lines += [f"#  {index:>3}: {job.variant.trainer_name} {job.variant.configuration} fold {job.fold}"
              for index, job in enumerate(jobs)]
    lines += [f"BENCHMARK=({shlex.join(benchmark_command(task_arguments, python))})",
              f'"${{BENCHMARK[@]}}" --task {TASK_ID}', ""]
    return "\n".join(lines)


def collect_script(resources: Resources, matrix_arguments: list[str], env: dict[str, str], log_dir: Path,
                   prefix: str = sys.prefix, python: str = sys.executable) -> str:
    """``sbatch`` script of the report job: it predicts the test set too, so it gets the tasks' GPUs."""
    lines = header("nnunet25d-collect", resources, f"{log_dir}/%x_%j.out", gpus=True) + prologue(env, prefix, python)
    return "\n".join(lines + [shlex.join([*benchmark_command(matrix_arguments, python), "--finalize"]), ""])


def preprocess_script(resources: Resources, preprocess: list[str], env: dict[str, str], log_dir: Path,
                      prefix: str = sys.prefix, python: str = sys.executable) -> str:
    command = with_processes([nnunet_script(preprocess[0], python), *preprocess[1:]], resources.cpus)
    lines = header("nnunet25d-preprocess", resources, f"{log_dir}/%x_%j.out") + prologue(env, prefix, python)
    lines += ["unset nnUNet_n_proc_DA  # nnU-Net's planner crashes on 0", shlex.join(command), ""]
    return "\n".join(lines)


def submit_script(array: Path, collect: Path, preprocess: Path | None) -> str:
    """Preprocessing, then the array only if it succeeded (``afterok``), then the report after every task."""
    lines = ["#!/bin/bash", "set -euo pipefail"]
    dependency = ""
    if preprocess is not None:
        lines.append(f"PRE=$(sbatch --parsable {shlex.quote(str(preprocess))}); PRE=${{PRE%%;*}}")
        dependency = "--dependency=afterok:$PRE "
    lines += [f"ARRAY=$(sbatch --parsable {dependency}{shlex.quote(str(array))}); ARRAY=${{ARRAY%%;*}}",
              f"sbatch --dependency=afterany:$ARRAY {shlex.quote(str(collect))}  # also after failed tasks", ""]
    return "\n".join(lines)


def write_slurm(jobs: list[Job], resources: Resources, out_dir: Path, matrix_arguments: list[str],
                task_arguments: list[str], preprocess: list[str] | None = None) -> str:
    """Write the array, the collect job, a preprocessing job if needed and the script submitting them in order;
    return what was written."""
    log_dir = out_dir / "slurm_logs"
    check_script_text("--output", str(log_dir))  # before anything is written
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    array, collect = out_dir / "benchmark_array.sbatch", out_dir / "benchmark_collect.sbatch"
    array.write_text(array_script(jobs, resources, task_arguments, env, log_dir))
    collect.write_text(collect_script(resources, matrix_arguments, env, log_dir))
    first = None
    if preprocess:
        first = out_dir / "benchmark_preprocess.sbatch"
        first.write_text(preprocess_script(resources, preprocess, env, log_dir))
    submit = out_dir / "submit_benchmark.sh"
    submit.write_text(submit_script(array, collect, first))
    written = [path for path in (first, array, collect) if path is not None]
    return "\n".join([f"wrote {', '.join(map(str, written))}", f"submit with: bash {submit}",
                      *("  " + line for line in submit.read_text().splitlines()[2:])])
