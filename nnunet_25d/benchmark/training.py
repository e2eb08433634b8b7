"""Train the matrix's unfinished folds here, one after another, and say which did not finish and why."""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from nnunet_25d.benchmark.fold_lock import FoldLock, LockHeld, fold_lock_path
from nnunet_25d.benchmark.matrix import Job
from nnunet_25d.inference.checkpoint_file import CheckpointError, CorruptCheckpointError, load_checkpoint_safely, \
    unreadable_checkpoint_message
from nnunet_25d.benchmark.runner import CommandFailed, NNUNetRunner, failure_reason


def after_deleting(checkpoint: Path) -> str:
    """What the benchmark does with the fold once the user deleted ``checkpoint`` (nnU-Net's --c order)."""
    best = checkpoint.parent / "checkpoint_best.pth"
    if checkpoint.name == "checkpoint_latest.pth" and best.exists():
        return f"delete it and run the benchmark again: it resumes the fold from {best.name}"
    if checkpoint.name == "checkpoint_final.pth":
        return "delete it and run the benchmark again to retrain the fold"
    return "delete it and run the benchmark again: it trains the fold from the start"


def corrupt_checkpoint_line(job: Job) -> str:
    checkpoint = job.checkpoint_in_use or job.fold_folder / "checkpoint_final.pth"
    return f"{job.variant.run_label} fold {job.fold}: " + unreadable_checkpoint_message(
        checkpoint, after_deleting(checkpoint))


def refused_checkpoint_line(job: Job) -> str | None:
    """Load the checkpoint that ``--c`` / ``--val`` would hand to nnU-Net (whose loader runs whatever a pickle
    holds) safely first: None if it is plain data, else a line naming the file and what to do."""
    checkpoint = job.checkpoint_in_use
    if checkpoint is None:
        return None
    try:
        load_checkpoint_safely(checkpoint)
    except CorruptCheckpointError:
        return corrupt_checkpoint_line(job)
    except CheckpointError as error:
        return f"{job.variant.run_label} fold {job.fold}: {error}"
    return None


def train_missing(runner: NNUNetRunner, jobs: list[Job], device: str, wait: bool = True) -> list[str]:
    """Train every unfinished job (resuming interrupted ones); return a line per failure. A fold whose final
    checkpoint cannot be read is left as it is (a failure naming the file): the user decides what to keep.

    Each fold is run under its lock (:mod:`fold_lock`): a fold another benchmark is running is waited for (or, not
    ``wait``, reported as a failure naming that run), and decided again from its files once the lock is ours."""
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
        label = f"{job.variant.run_label} fold {job.fold}"
        try:
            with FoldLock(fold_lock_path(job.model_folder, job.fold), label, wait=wait, say=tqdm.write):
                line = run_locked(runner, job, device)
        except LockHeld as held:
            line = f"{label}: {held}"
        if line is not None:
            failures.append(line)
            tqdm.write(f"FAILED: {failures[-1]}")
    return failures


def run_locked(runner: NNUNetRunner, job: Job, device: str) -> str | None:
    """Train, resume or validate one fold as its files say now (another run may have finished it meanwhile);
    a line if it failed."""
    mode = job.mode
    what = f"{job.variant.trainer_name} {job.variant.configuration} fold {job.fold}"
    if mode == "done":
        tqdm.write(f"{what}: skipped (finished by the run that held its lock)")
        return None
    if mode == "corrupt":
        return corrupt_checkpoint_line(job)
    action = {"resume": "resuming with --c:", "validate": "validating with --val:"}.get(mode, "training")
    tqdm.write(f"{action} {what}")
    refused = refused_checkpoint_line(job) if mode in ("resume", "validate") else None
    if refused is not None:
        return refused
    try:
        runner.run(job.measured_args(device, mode), job.name, training=True, total_epochs=job.variant.epochs)
    except CommandFailed as error:
        return did_not_finish_line(job, error.last_line or "(empty log)", error.log_path)
    return None


def did_not_finish_line(job: Job, last_line: str, log: Path) -> str:
    return f"{job.variant.run_label} fold {job.fold}: did not finish: {last_line} (log: {log})"


def last_log_line(log: Path) -> str:
    """Why the log's last run failed, in one line (see :func:`runner.failure_reason`)."""
    return failure_reason(log.read_text(errors="replace").splitlines()) or "(empty log)"


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


def with_training_failures(failed: list[str], not_run: list[str], training: list[str]) -> tuple[list[str], list[str]]:
    """(failed, not run) with the lines of this run's training first: a fold refused before nnU-Net ran (its
    checkpoint) has no log saying so, and replaces what the fold's files alone would say of it."""
    runs = {line.split(": ", 1)[0] for line in training}
    return (training + [line for line in failed if line.split(": ", 1)[0] not in runs],
            [line for line in not_run if line.split(": ", 1)[0] not in runs])
