"""One task of the benchmark matrix, ``nnunet25d benchmark MATRIX --task I``: what every SLURM array task, submitit
job and emitted command runs. It decides skip / validate / resume / train once, here, from the fold's files."""
from __future__ import annotations

import argparse
import os
import shlex
from dataclasses import replace
from pathlib import Path

from nnunet_25d.benchmark.matrix import Job
from nnunet_25d.benchmark.resources import resources_from_args
from nnunet_25d.benchmark.training import train_missing
from nnunet_25d.benchmark.runner import NNUNetRunner


def granted_cpus(requested: int | None = None) -> int:
    """The CPUs this task may use: SLURM's grant, else ``--cpus``, else this process's CPU affinity."""
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    if requested:
        return requested
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def data_augmentation_workers(cpus: int) -> int:
    """``nnUNet_n_proc_DA``: one CPU stays with the training loop, the others augment (at least one worker)."""
    return max(1, cpus - 1)


def task_job(jobs: list[Job], index: int, num_gpus: int) -> Job:
    if not 0 <= index < len(jobs):
        raise SystemExit(f"--task {index}: this matrix has tasks 0-{len(jobs) - 1} (variants x folds, variant by "
                         f"variant); pass the same variants and folds as when it was launched")
    return replace(jobs[index], num_gpus=num_gpus)


def run_task(args: argparse.Namespace, jobs: list[Job], out_dir: Path) -> None:
    """Skip a finished fold, else validate, resume or train it with the benchmark's own runner."""
    if args.task is None:
        raise SystemExit("--dry-run shows what one task would do: add --task I (0 = the first variant's first fold)")
    gpus = resources_from_args(args).gpus
    job = task_job(jobs, args.task, max(1, gpus) if args.device == "cuda" else 1)
    workers = data_augmentation_workers(granted_cpus(args.cpus))
    os.environ["nnUNet_n_proc_DA"] = str(workers)
    print(f"task {args.task} of {len(jobs)}: {job.variant.run_label} fold {job.fold}: {job.mode} "
          f"(nnUNet_n_proc_DA={workers})", flush=True)
    if args.dry_run:
        print("nothing to run" if job.finished else shlex.join(job.measured_args(args.device)))
        return
    failures = train_missing(NNUNetRunner(out_dir / "logs", device=args.device), [job], args.device,
                             getattr(args, "wait", True))
    if failures:
        raise SystemExit(failures[0])
