"""Hand the benchmark matrix to a scheduler: a SLURM job array (one task per variant x fold) or a command list."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.benchmark.matrix import Job

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def environment_lines(env: dict[str, str]) -> list[str]:
    lines = [f"export {name}={shlex.quote(env[name])}" for name in NNUNET_FOLDERS if env.get(name)]
    ext = env.get("nnUNet_extTrainer") or str(TRAINER_FOLDER)
    return lines + [f"export nnUNet_extTrainer={shlex.quote(ext)}"]


def command_list(jobs: list[Job], device: str) -> list[str]:
    """One shell line per job; each resumes with ``--c`` if its fold already has a checkpoint."""
    return [job.shell_command(device) for job in jobs]


def slurm_array_script(jobs: list[Job], device: str, env: dict[str, str], gpus_per_task: int = 1,
                       time_limit: str = "48:00:00", cpus_per_task: int = 8, memory: str = "64G",
                       log_dir: str = "slurm_logs") -> str:
    """``sbatch`` script: array task i runs job i of the matrix."""
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=nnunet25d-benchmark",
        f"#SBATCH --array=0-{len(jobs) - 1}",
        f"#SBATCH --cpus-per-task={cpus_per_task}",
        f"#SBATCH --mem={memory}",
        f"#SBATCH --time={time_limit}",
        f"#SBATCH --output={log_dir}/%x_%A_%a.out",
    ]
    if gpus_per_task > 0:
        lines.append(f"#SBATCH --gres=gpu:{gpus_per_task}")
    lines += ["set -euo pipefail", *environment_lines(env), "", "JOBS=("]
    lines += [f"  {shlex.quote(command)}  # {job.name}" for job, command in zip(jobs, command_list(jobs, device))]
    lines += [")", 'echo "task ${SLURM_ARRAY_TASK_ID}: ${JOBS[$SLURM_ARRAY_TASK_ID]}"',
              'eval "${JOBS[$SLURM_ARRAY_TASK_ID]}"', ""]
    return "\n".join(lines)


def collect_script(benchmark_args: list[str], env: dict[str, str]) -> str:
    """The collect step, to submit with ``--dependency=afterok:<array job id>``."""
    command = shlex.join(["nnunet25d", "benchmark", *benchmark_args, "--collect-only"])
    return "\n".join(["#!/bin/bash", "#SBATCH --job-name=nnunet25d-collect", "#SBATCH --cpus-per-task=4",
                      "#SBATCH --time=4:00:00", "set -euo pipefail", *environment_lines(env), command, ""])


def write_slurm(jobs: list[Job], device: str, out_dir: Path, benchmark_args: list[str],
                gpus_per_task: int = 1) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "slurm_logs").mkdir(exist_ok=True)
    env = dict(os.environ)
    array = out_dir / "benchmark_array.sbatch"
    collect = out_dir / "benchmark_collect.sbatch"
    array.write_text(slurm_array_script(jobs, device, env, gpus_per_task,
                                        log_dir=str(out_dir / "slurm_logs")))
    collect.write_text(collect_script(benchmark_args, env))
    return array, collect


def submission_hint(array: Path, collect: Path) -> str:
    return (f"submit with:\n  ARRAY=$(sbatch --parsable {array})\n"
            f"  sbatch --dependency=afterok:$ARRAY {collect}\n"
            f"(python used for the measured runs: {sys.executable})")
