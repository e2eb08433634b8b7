"""One benchmark at a time per fold: a lock naming its holder (PID, host), waited for or reported, taken over when
its holder is gone; the time of interrupted runs stays in the fold's record. Real processes hold the locks."""
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

import nnunetv2.run.run_training as run_training
import pytest
import torch
from tests.benchmark.benchmark_tree import job, toy_nnunet_folders, write_splits
from tests.conftest import TINY_ID

from nnunet_25d.benchmark.fold_lock import FoldLock, LockHeld, fold_lock_path, read_holder
from nnunet_25d.benchmark import measure
from nnunet_25d.benchmark.measure import RUNS_KEY, merged_with
from nnunet_25d.report.load import OTHER_CPU_KEY

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


def test_runs_still_marked_running_were_interrupted_and_their_time_is_kept():
    previous = {"commands": [["a"]], "wall_seconds": 30.0, RUNS_KEY: [{"command": ["a"], "wall_seconds": 30.0,
                                                                      "status": "running"}]}
    now = merged_with({"commands": [["b"]], "wall_seconds": 10.0, RUNS_KEY: [{"command": ["b"], "wall_seconds": 10.0,
                                                                              "status": "finished"}]}, previous)
    assert now["wall_seconds"] == 40.0 and [r["status"] for r in now[RUNS_KEY]] == ["interrupted", "finished"]


def test_a_killed_run_keeps_its_time_in_the_record_and_the_next_run_adds_to_it(tmp_path):
    """SIGKILL while nnU-Net starts (nothing to clean up with): the record refreshed while it ran stays; the next
    run (here one that fails at once) adds its own time instead of replacing the record."""
    record = tmp_path / "fold_0" / "benchmark_resources.json"
    measure = [sys.executable, "-m", "nnunet_25d.benchmark.measure", "--record", str(record), "--every", "0.2", "--",
               "nnUNetv2_train", "999999", "2d", "0", "-device", "cpu"]
    first = subprocess.Popen(measure, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (record.exists() and json.loads(record.read_text())["wall_seconds"] >= 1.0):
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = json.loads(record.read_text())
    assert killed[RUNS_KEY][-1]["status"] == "running" and killed["wall_seconds"] >= 1.0
    second = subprocess.run(measure, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    both = json.loads(record.read_text())
    assert [run["status"] for run in both[RUNS_KEY]] == ["interrupted", "failed"]
    assert both["wall_seconds"] == pytest.approx(sum(run["wall_seconds"] for run in both[RUNS_KEY]))
    assert both["wall_seconds"] > killed["wall_seconds"] and len(both["commands"]) == 2
    assert not [p for p in record.parent.iterdir() if p.name.startswith(".partial")]


def test_sigterm_records_the_run_as_interrupted(tmp_path):
    record = tmp_path / "benchmark_resources.json"
    run = subprocess.Popen([sys.executable, "-m", "nnunet_25d.benchmark.measure", "--record", str(record), "--",
                            "nnUNetv2_train", "999999", "2d", "0", "-device", "cpu"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not record.exists():
        assert run.poll() is None and time.time() < deadline
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 128 + signal.SIGTERM
    assert json.loads(record.read_text())[RUNS_KEY][-1]["status"] == "interrupted"


MISSING_DATASET = ["nnUNetv2_train", "999999", "2d", "0", "-device", "cpu"]


@pytest.fixture
def measure_in_process(tmp_path, monkeypatch):
    """``measure.main`` in this process on nnU-Net's real entry point, with a step run first inside it (where a
    signal can land); ``run.record`` is the record's path. pytest's SIGTERM handler and torch's thread count (nnU-Net's
    ``-device cpu`` sets it) are restored afterwards."""
    nnunet_entry = run_training.run_training_entry
    monkeypatch.setattr(measure, "_TERMINATED_BY", [])
    monkeypatch.setattr(sys, "argv", sys.argv)
    pytest_handler, pytest_threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    record = tmp_path / "benchmark_resources.json"

    def run(command: list[str], before_nnunet=lambda: None) -> None:
        def entry():
            before_nnunet()
            nnunet_entry()

        monkeypatch.setattr(run_training, "run_training_entry", entry)
        try:
            measure.main(["--record", str(record), *command])
        finally:
            signal.signal(signal.SIGTERM, pytest_handler)
            torch.set_num_threads(pytest_threads)

    run.record = record
    return run


def last_status(record: Path) -> str:
    return json.loads(record.read_text())[RUNS_KEY][-1]["status"]


def test_sigterm_caught_by_a_library_still_ends_the_run_as_interrupted(measure_in_process):
    """CI once saw SIGTERM turn into nnU-Net's own failure (exit 1): torch's optional import of triton caught the
    SystemExit, and nnU-Net went on. The signal is remembered, not only raised."""
    caught = []

    def sigterm_into_an_import_guard():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException as swallowed:
            caught.append(swallowed)

    with pytest.raises(SystemExit) as ended:
        measure_in_process(["--", *MISSING_DATASET], sigterm_into_an_import_guard)
    assert [type(c) for c in caught] == [SystemExit], "the signal reached the library's guard, and nnU-Net went on"
    assert ended.value.code == 128 + signal.SIGTERM and last_status(measure_in_process.record) == "interrupted"


def test_sigterm_ends_the_run_as_interrupted_in_process(measure_in_process):
    with pytest.raises(SystemExit) as ended:
        measure_in_process(["--", *MISSING_DATASET], lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert ended.value.code == 128 + signal.SIGTERM and last_status(measure_in_process.record) == "interrupted"


def test_ctrl_c_is_recorded_as_interrupted_and_stays_a_keyboard_interrupt(measure_in_process):
    with pytest.raises(KeyboardInterrupt):
        measure_in_process(["--", *MISSING_DATASET], lambda: os.kill(os.getpid(), signal.SIGINT))
    assert last_status(measure_in_process.record) == "interrupted"


def test_nnunet_failing_on_its_own_is_recorded_as_failed_with_its_error(measure_in_process):
    """Also without the ``--`` before nnU-Net's command."""
    with pytest.raises(RuntimeError, match="Could not find a dataset with the ID 999999"):
        measure_in_process(MISSING_DATASET)
    recorded = json.loads(measure_in_process.record.read_text())
    assert last_status(measure_in_process.record) == "failed" and recorded["commands"] == [MISSING_DATASET]
    assert recorded[OTHER_CPU_KEY] >= 0, "other work's CPU is sampled while nnU-Net runs"


@pytest.mark.parametrize("arguments, code, status", [(["-h"], 0, "finished"), (["999999"], 2, "failed")],
                         ids=["help", "missing-arguments"])
def test_nnunet_exiting_is_recorded_by_its_exit_code(measure_in_process, arguments, code, status):
    with pytest.raises(SystemExit) as ended:
        measure_in_process(["--", "nnUNetv2_train", *arguments])
    assert ended.value.code == code and last_status(measure_in_process.record) == status


def test_a_command_other_than_nnunet_train_is_refused_naming_the_form(tmp_path, capsys):
    with pytest.raises(SystemExit):
        measure.main(["--record", str(tmp_path / "r.json"), "--", "nnUNetv2_predict", "-h"])
    assert "expected `-- nnUNetv2_train ARGS`, got ['nnUNetv2_predict', '-h']" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


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
