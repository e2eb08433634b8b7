"""Train the matrix's unfinished folds here, one after another, and say which did not finish and why."""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from nnunet_25d.benchmark.matrix import Job
from nnunet_25d.inference.checkpoint_file import unreadable_checkpoint_message
from nnunet_25d.benchmark.runner import CommandFailed, NNUNetRunner, last_nonempty_line


def corrupt_checkpoint_line(job: Job) -> str:
    return f"{job.variant.run_label} fold {job.fold}: " + unreadable_checkpoint_message(
        job.fold_folder / "checkpoint_final.pth", "delete it and run the benchmark again to retrain the fold")


def train_missing(runner: NNUNetRunner, jobs: list[Job], device: str) -> list[str]:
    """Train every unfinished job (resuming interrupted ones); return a line per failure. A fold whose final
    checkpoint cannot be read is left as it is (a failure naming the file): the user decides what to keep."""
    failures = []
    modes = {job: job.mode for job in jobs}  # each reads the fold's files
    corrupt = [job for job in jobs if modes[job] == "corrupt"]
    todo = [job for job in jobs if modes[job] not in ("done", "corrupt")]
    print(f"{len(jobs) - len(todo) - len(corrupt)} of {len(jobs)} runs finished already; training {len(todo)}",
          flush=True)
    for job in jobs:
        if modes[job] == "done":
            print(f"{job.variant.trainer_name} {job.variant.configuration} fold {job.fold}: skipped (finished)",
                  flush=True)
    for job in corrupt:
        failures.append(corrupt_checkpoint_line(job))
        print(f"FAILED: {failures[-1]}", flush=True)
    runner.announce = tqdm.write  # the command each run really starts, and its log (for `tail -f`)
    for job in tqdm(todo, desc="benchmark runs", unit="run"):
        action = {"resume": "resuming with --c:", "validate": "validating with --val:"}.get(modes[job], "training")
        tqdm.write(f"{action} {job.variant.trainer_name} {job.variant.configuration} fold {job.fold}")
        try:
            runner.run(job.measured_args(device), job.name, training=True, total_epochs=job.variant.epochs)
        except CommandFailed as error:
            failures.append(did_not_finish_line(job, error.last_line or "(empty log)", error.log_path))
            tqdm.write(f"FAILED: {failures[-1]}")
    return failures


def did_not_finish_line(job: Job, last_line: str, log: Path) -> str:
    return f"{job.variant.run_label} fold {job.fold}: did not finish: {last_line} (log: {log})"


def last_log_line(log: Path) -> str:
    return last_nonempty_line(log.read_text(errors="replace").splitlines()) or "(empty log)"


def unfinished_runs(jobs: list[Job], log_dir: Path) -> tuple[list[str], list[str]]:
    """(failed, not run): a line per unfinished job. A job with a log ran and did not finish (its last log line
    says why); without one it never started here, which is not a failure."""
    failed, not_run = [], []
    for job in jobs:
        what, log, mode = f"{job.variant.run_label} fold {job.fold}", log_dir / f"{job.name}.log", job.mode
        if mode == "done":
            continue
        if mode == "corrupt":
            failed.append(corrupt_checkpoint_line(job))
        elif log.is_file():
            failed.append(did_not_finish_line(job, last_log_line(log), log))
        elif mode == "resume":
            not_run.append(f"{what}: interrupted (a checkpoint, no final one): the benchmark resumes it with --c")
        elif mode == "validate":
            not_run.append(f"{what}: trained, not validated with --npz: the benchmark runs its --val")
        else:
            not_run.append(f"{what}: not started: run the benchmark without --collect-only/--finalize to train it")
    return failed, not_run
