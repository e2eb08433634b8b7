"""One benchmark at a time per fold: a lock naming its holder (PID, host), waited for or reported, taken over when
its holder is gone. Real processes hold the locks. (The fold's resource record: test_measure.py.)"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.benchmark.benchmark_tree import job, toy_nnunet_folders, write_splits
from tests.conftest import TINY_ID

from nnunet_25d.benchmark.fold_lock import FoldLock, LockHeld, fold_lock_path, read_holder
from nnunet_25d.benchmark.measure import RUNS_KEY

HOLD = """
import sys, time
from pathlib import Path
from nnunet_25d.benchmark.fold_lock import FoldLock
with FoldLock(Path(sys.argv[1]), "holder"):
    print("held", flush=True)
    time.sleep(60)
"""


def hold(path: Path) -> subprocess.Popen:
    """Another process holding the lock at ``path`` (it prints "held" once it does)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_lock(path: Path, pid: int, host: str, age_s: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host, "started": "2025-01-01 00:00:00", "what": "x",
                                "token": "old"}))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def test_a_held_lock_names_its_holder_and_a_killed_holders_lock_is_taken_over(tmp_path):
    path = tmp_path / "fold.lock"
    holder = hold(path)
    try:
        with pytest.raises(LockHeld) as held:
            FoldLock(path, "nnUNetTrainer 2d fold 0", wait=False).acquire()
        message = str(held.value)
        assert "\n" not in message and f"PID {holder.pid} on {socket.gethostname()}" in message and str(path) in message
        said, got = [], threading.Event()
        waiting = FoldLock(path, "nnUNetTrainer 2d fold 0", say=said.append, poll_s=0.1)
        thread = threading.Thread(target=lambda: (waiting.acquire(), got.set()))
        thread.start()
        time.sleep(0.5)
        assert not got.is_set() and said and said[0].startswith("nnUNetTrainer 2d fold 0: waiting for the run "
                                                                 f"holding it (PID {holder.pid}")
        holder.send_signal(signal.SIGKILL)  # no clean-up: its lock file stays, naming a dead PID
        holder.wait()
        thread.join(timeout=10)
        assert got.is_set() and read_holder(path).pid == os.getpid()
        assert any("took over the lock" in line for line in said)
        waiting.release()
        assert not path.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_of_a_dead_pid_on_this_host_is_taken_over_at_once(tmp_path):
    path = tmp_path / "fold.lock"
    write_lock(path, dead_pid(), socket.gethostname())
    with FoldLock(path, "fold", wait=False, say=lambda line: None):
        assert read_holder(path).pid == os.getpid()


def test_a_lock_from_another_host_is_held_until_it_goes_stale(tmp_path):
    path = tmp_path / "fold.lock"
    write_lock(path, 1, "another-node", age_s=5)
    with pytest.raises(LockHeld, match="PID 1 on another-node"):
        FoldLock(path, "fold", wait=False).acquire()
    write_lock(path, 1, "another-node", age_s=3600)  # not refreshed for an hour: that node's run is gone
    with FoldLock(path, "fold", wait=False, say=lambda line: None):
        assert read_holder(path).host == socket.gethostname()


def test_the_holder_refreshes_its_lock(tmp_path):
    path = tmp_path / "fold.lock"
    with FoldLock(path, "fold", heartbeat_s=0.1):
        old = time.time() - 100
        os.utime(path, (old, old))
        time.sleep(0.5)
        assert time.time() - path.stat().st_mtime < 5


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    env = toy_nnunet_folders(tmp_path)
    write_splits(tmp_path / "preprocessed" / "Dataset999_Toy", [["c0"], ["c1"]])
    return env


def test_a_benchmark_task_whose_fold_another_run_holds_says_who_and_runs_nothing(folders, tmp_path):
    fold_job = job(tmp_path, "nnUNetTrainer", "2d", 0)
    holder = hold(fold_lock_path(fold_job.model_folder, 0))
    try:
        result = subprocess.run([sys.executable, "-m", "nnunet_25d.cli", "benchmark", "-d", "999", "--variants",
                                 "nnUNetTrainer:2d", "--folds", "0", "-device", "cpu", "--task", "0", "--no-wait",
                                 "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                                env=folders)
    finally:
        holder.kill()
        holder.wait()
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert last.startswith("nnUNetTrainer 2d fold 0: nnUNetTrainer 2d fold 0 is being run by another benchmark "
                           f"(PID {holder.pid} on {socket.gethostname()}")
    assert not (tmp_path / "out" / "logs").exists() and not fold_job.fold_folder.exists(), "nnU-Net was not started"


RACE = ["-d", str(TINY_ID), "--variants", "nnUNetTrainer:2d", "--folds", "4", "--schedule", "2x5", "-device", "cpu",
        "--no-find-best", "--no-test"]


def test_two_benchmarks_racing_for_one_fold_train_it_once(nnunet, tiny_dataset, tmp_path):
    """Started together: one trains the fold, the other waits for it and then skips it as finished."""
    env = dict(nnunet.env)
    runs = [subprocess.Popen(["nnunet25d", "benchmark", *RACE, "--output", str(tmp_path / f"out{i}")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    fold = nnunet.model_folder(tiny_dataset, "nnUNetTrainer_2epochs_5iters") / "fold_4"
    record = json.loads((fold / "benchmark_resources.json").read_text())
    assert [run["status"] for run in record[RUNS_KEY]] == ["finished"], "trained once"
    waited = [o for o in outputs if "waiting for the run holding it" in o]
    assert len(waited) == 1 and "skipped (finished by the run that held its lock)" in waited[0]
    assert not list(fold.parent.glob(".nnunet25d_fold_*.lock")), "the lock is gone with its holder"
