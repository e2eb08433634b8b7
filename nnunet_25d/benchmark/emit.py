"""Hand the benchmark matrix to a scheduler: a SLURM job array (one task per variant x fold) or a command list."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from nnunet_25d.benchmark.matrix import Job
from nnunet_25d.runner import NNUNET_FOLDERS, trainer_lookup_path


def environment_lines(env: dict[str, str]) -> list[str]:
    lines = [f"export {name}={shlex.quote(env[name])}" for name in NNUNET_FOLDERS if env.get(name)]
    return lines + [f"export nnUNet_extTrainer={shlex.quote(trainer_lookup_path(env.get('nnUNet_extTrainer')))}"]


def command_list(jobs: list[Job], device: str, num_gpus: int = 1) -> list[str]:
    """One shell line per job; each skips, validates, resumes or trains depending on its fold's files."""
    return [job.shell_command(device, num_gpus=num_gpus) for job in jobs]


def slurm_array_script(jobs: list[Job], device: str, env: dict[str, str], gpus_per_task: int = 1,
                       time_limit: str = "48:00:00", cpus_per_task: int = 8, memory: str = "64G",
                       log_dir: str = "slurm_logs") -> str:
    """``sbatch`` script: array task i runs job i of the matrix (GPUs only for ``-device cuda``)."""
    gpus = gpus_per_task if device == "cuda" else 0
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=nnunet25d-benchmark",
        f"#SBATCH --array=0-{len(jobs) - 1}",
        f"#SBATCH --cpus-per-task={cpus_per_task}",
        f"#SBATCH --mem={memory}",
        f"#SBATCH --time={time_limit}",
        f"#SBATCH --output={log_dir}/%x_%A_%a.out",
    ]
    if gpus > 0:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    lines += ["set -euo pipefail", *environment_lines(env), "", "JOBS=("]
    commands = command_list(jobs, device, max(gpus, 1))
    lines += [f"  {shlex.quote(command)}  # {job.name}" for job, command in zip(jobs, commands)]
    lines += [")", 'echo "task ${SLURM_ARRAY_TASK_ID}: ${JOBS[$SLURM_ARRAY_TASK_ID]}"',
              'eval "${JOBS[$SLURM_ARRAY_TASK_ID]}"', ""]
    return "\n".join(lines)


def single_job_script(name: str, command: list[str], env: dict[str, str], time_limit: str = "4:00:00") -> str:
    return "\n".join(["#!/bin/bash", f"#SBATCH --job-name={name}", "#SBATCH --cpus-per-task=8",
                      f"#SBATCH --time={time_limit}", "set -euo pipefail", *environment_lines(env),
                      shlex.join(command), ""])


def write_slurm(jobs: list[Job], device: str, out_dir: Path, benchmark_args: list[str], gpus_per_task: int = 1,
                preprocess: list[str] | None = None) -> str:
    """Write the array, the collect job (and a preprocessing job if needed); return how to submit them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "slurm_logs").mkdir(exist_ok=True)
    env = dict(os.environ)
    array, collect = out_dir / "benchmark_array.sbatch", out_dir / "benchmark_collect.sbatch"
    array.write_text(slurm_array_script(jobs, device, env, gpus_per_task, log_dir=str(out_dir / "slurm_logs")))
    collect_command = [sys.executable, "-m", "nnunet_25d.cli", "benchmark", *benchmark_args, "--collect-only"]
    collect.write_text(single_job_script("nnunet25d-collect", collect_command, env))
    lines = ["submit with:"]
    dependency = ""
    if preprocess:
        first = out_dir / "benchmark_preprocess.sbatch"
        first.write_text(single_job_script("nnunet25d-preprocess", preprocess, env))
        lines.append(f"  PRE=$(sbatch --parsable {first})")
        dependency = "--dependency=afterok:$PRE "
    lines += [f"  ARRAY=$(sbatch --parsable {dependency}{array})",
              f"  sbatch --dependency=afterany:$ARRAY {collect}   # also after failed tasks: it reports them"]
    return "\n".join(lines)
