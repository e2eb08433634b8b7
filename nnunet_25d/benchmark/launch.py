"""``--launch slurm|local``: the benchmark matrix submitted with submitit (Meta's SLURM launcher; its local executor
runs the same jobs as processes here): preprocessing first, one job per variant x fold (a job array), then the
report after every task, failed ones included (it predicts the test set with every finished variant first).
``--emit`` writes the same as scripts instead."""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from nnunet_25d.benchmark.emit import benchmark_command, command_list, nnunet_script, with_processes, write_slurm
from nnunet_25d.benchmark.matrix import Job
from nnunet_25d.benchmark.resources import Resources, add_resource_arguments, at_least, resources_from_args
from nnunet_25d.benchmark.task import granted_cpus
from nnunet_25d.benchmark.runner import CommandFailed, NNUNetRunner


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clusters")
    group.add_argument("--launch", choices=["slurm", "local"],
                       help="submit the matrix with submitit: preprocessing, one job per variant x fold (a SLURM "
                            "job array), then the report after all of them; 'local' runs the same jobs here")
    group.add_argument("--task", type=at_least(0), default=None, metavar="I",
                       help="run task I of the matrix (variant by variant, fold by fold): skip, validate, resume "
                            "or train it; what every launched or emitted task calls")
    group.add_argument("--dry-run", action="store_true", help="with --task: print the decision, run nothing")
    add_resource_arguments(parser)


def failure_line(error: Exception) -> str:
    """The exception a submitit job raised, from the error submitit gives back (its traceback between rules)."""
    text = str(error)
    parts = text.split("-" * 22)
    trace = parts[1] if len(parts) >= 3 else text
    return next((line.strip() for line in reversed(trace.splitlines()) if line.strip()), text)


def run_benchmark_command(arguments: list[str]) -> None:
    """``nnunet25d benchmark ARGUMENTS`` in a process of its own, as the emitted scripts run it; its stderr passes
    through, and a failure becomes an exception (its last line) that submitit records."""
    process = subprocess.Popen(benchmark_command(arguments), stderr=subprocess.PIPE, text=True, bufsize=1)
    last = ""
    for line in process.stderr:
        sys.stderr.write(line)
        last = line.strip() or last
    if process.wait() != 0:
        raise RuntimeError(last or f"exit code {process.returncode}")  # names the fold and its log


@dataclass(frozen=True)
class BenchmarkTask:
    """A submitit job: task ``index`` of the matrix, through the same entry as the emitted array."""

    arguments: list[str]

    def __call__(self, index: int) -> None:
        run_benchmark_command([*self.arguments, "--task", str(index)])

    def checkpoint(self, index: int):
        """Called by submitit on preemption or timeout: requeue the same task; it resumes the fold with --c."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, index)


@dataclass(frozen=True)
class Preprocess:
    command: list[str]
    log_dir: Path
    device: str

    def __call__(self) -> None:
        try:
            NNUNetRunner(self.log_dir, device=self.device).run(self.command, "preprocess")
        except CommandFailed as error:
            raise RuntimeError(error.summary) from None


@dataclass(frozen=True)
class CollectReport:
    """After the tasks: the test-set predictions of the finished variants, find_best_configuration, the report."""

    arguments: list[str]

    def __call__(self) -> None:
        run_benchmark_command([*self.arguments, "--finalize"])


def executor(kind: str, folder: Path, resources: Resources, name: str, gpus: int = 0,
             dependency: str | None = None, array_size: int = 1):
    import submitit

    parameters = {}
    if dependency:  # an array that can never start is cancelled, not left pending
        parameters = {"slurm_dependency": dependency, "slurm_additional_parameters": {"kill-on-invalid-dep": "yes"}}
    launcher = submitit.AutoExecutor(folder=folder, cluster=kind)
    launcher.update_parameters(name=name, timeout_min=resources.minutes, cpus_per_task=resources.cpus,
                               gpus_per_node=gpus or None, slurm_partition=resources.partition,
                               slurm_account=resources.account, slurm_mem=resources.memory,
                               slurm_array_parallelism=resources.array_parallelism or array_size, **parameters)
    return launcher


def task_arguments(matrix_arguments: list[str], args: argparse.Namespace, resources: Resources) -> list[str]:
    """The matrix, and what a task needs of its resources (the GPUs for -num_gpus, the CPUs when not on SLURM)."""
    cpus = ["--cpus", str(args.cpus)] if args.cpus else []
    return [*matrix_arguments, *cpus, "--gpus", str(resources.gpus)]


def submit_preprocessing(kind: str, folder: Path, resources: Resources, preprocess: list[str], out_dir: Path,
                         device: str):
    command = with_processes([nnunet_script(preprocess[0]), *preprocess[1:]], resources.cpus)
    return executor(kind, folder, resources, "nnunet25d-preprocess").submit(
        Preprocess(command, out_dir / "logs", device))


def launch_local(jobs: list[Job], resources: Resources, out_dir: Path, matrix_arguments: list[str],
                 tasks: list[str], preprocess: list[str] | None, device: str) -> None:
    """Preprocess, run every task, wait for all of them, then collect (failed tasks included)."""
    folder = out_dir / "submitit"
    if preprocess:
        wait_for_preprocessing(submit_preprocessing("local", folder, resources, preprocess, out_dir, device))
    array = executor("local", folder, resources, "nnunet25d-benchmark", resources.gpus, array_size=len(jobs))
    failures = run_bounded(array, BenchmarkTask(tasks), jobs, resources.array_parallelism or 1)
    try:
        CollectReport(matrix_arguments)()
    except RuntimeError as error:  # the report's own exit; its message is printed above
        failures.append(f"the report step failed: {error}")
    if failures:
        raise SystemExit("\n".join(failures))


def launch_slurm(jobs: list[Job], resources: Resources, out_dir: Path, matrix_arguments: list[str],
                 tasks: list[str], preprocess: list[str] | None, device: str) -> None:
    """Submit preprocessing, the array (``afterok`` on preprocessing) and the collect job (``afterany`` on the
    array), and return: SLURM keeps the order."""
    folder = out_dir / "submitit"
    pre = submit_preprocessing("slurm", folder, resources, preprocess, out_dir, device) if preprocess else None
    array = executor("slurm", folder, resources, "nnunet25d-benchmark", resources.gpus,
                     f"afterok:{pre.job_id}" if pre is not None else None, len(jobs))
    array_id = array.map_array(BenchmarkTask(tasks), range(len(jobs)))[0].job_id.split("_")[0]
    collect = executor("slurm", folder, resources, "nnunet25d-collect", resources.gpus,  # it predicts the test set
                       f"afterany:{array_id}").submit(
        CollectReport(matrix_arguments))
    at_once = f", at most {resources.array_parallelism} at a time" if resources.array_parallelism else ""
    after = " once preprocessing succeeded (cancelled if it fails)" if pre is not None else ""
    print("\n".join([f"submitted with submitit (its logs: {folder})",
                     *([f"  preprocessing  job {pre.job_id}"] if pre is not None else []),
                     f"  tasks          job {array_id}: {len(jobs)} tasks{at_once}{after}",
                     f"  report         job {collect.job_id} after every task, failed ones too: "
                     f"{out_dir / 'benchmark.md'}",
                     f"training logs: {out_dir / 'logs'}"]))


def wait_for_preprocessing(job) -> None:
    try:
        job.result()
    except Exception as error:  # submitit's FailedJobError carries the job's traceback
        raise SystemExit(f"preprocessing failed, no task was started: {failure_line(error)} "
                         f"(submitit log: {job.paths.stderr})")


def wait_for_task(index: int, job, matrix_job: Job) -> list[str]:
    """Wait for one task; a line if it failed."""
    try:
        job.result()
    except Exception as error:
        return [f"task {index} ({matrix_job.variant.run_label} fold {matrix_job.fold}) failed: "
                f"{failure_line(error)} (submitit log: {job.paths.stderr})"]
    return []


def run_bounded(executor_, task: BenchmarkTask, jobs: list[Job], at_once: int) -> list[str]:
    """Every task, at most ``at_once`` running (submitit's local executor ignores array_parallelism and would start
    them all: 45 trainings on one machine); one line per failed task."""
    failures, running = [], []
    for index, matrix_job in enumerate(jobs):
        running.append((index, executor_.submit(task, index), matrix_job))
        if len(running) >= at_once:
            failures += wait_for_task(*running.pop(0))
    for waiting in running:
        failures += wait_for_task(*waiting)
    return failures


def schedule(args: argparse.Namespace, jobs: list[Job], out_dir: Path, preprocess: list[str] | None,
             matrix_arguments: list[str]) -> None:
    """``--emit`` or ``--launch``: hand the matrix to a scheduler."""
    if args.emit and args.launch:
        raise SystemExit("--emit and --launch exclude each other: --emit writes scripts, --launch submits the jobs")
    if args.collect_only or args.finalize:
        flag = "--collect-only" if args.collect_only else "--finalize"
        raise SystemExit(f"{flag} trains nothing: run it without --emit or --launch")
    resources = resources_from_args(args)
    if args.launch == "local":  # this machine's CPUs, not a cluster's default
        resources = replace(resources, cpus=granted_cpus(args.cpus))
    tasks = task_arguments(matrix_arguments, args, resources)
    if args.emit == "commands":
        print("\n".join(([shlex.join(preprocess)] if preprocess else []) + command_list(jobs, tasks)))
    elif args.emit == "slurm":
        print(write_slurm(jobs, resources, out_dir, matrix_arguments, tasks, preprocess))
    else:
        launcher = launch_local if args.launch == "local" else launch_slurm
        launcher(jobs, resources, out_dir, matrix_arguments, tasks, preprocess, args.device)
