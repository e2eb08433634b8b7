"""``python -m nnunet_25d.benchmark.measure``: the fold's resource record through every way a run ends (finished,
failed, SIGTERM, Ctrl-C, SIGKILL) and across its resumptions. nnU-Net's real entry point runs in each, in a
subprocess or in this process (where a signal can be sent at a chosen point)."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import nnunetv2.run.run_training as run_training
import pytest
import torch

from nnunet_25d.benchmark import measure
from nnunet_25d.benchmark.measure import RUNS_KEY, merged_with
from nnunet_25d.report.load import OTHER_CPU_KEY

MISSING_DATASET = ["nnUNetv2_train", "999999", "2d", "0", "-device", "cpu"]


def last_status(record: Path) -> str:
    return json.loads(record.read_text())[RUNS_KEY][-1]["status"]


def test_runs_still_marked_running_were_interrupted_and_their_time_is_kept():
    previous = {"commands": [["a"]], "wall_seconds": 30.0, RUNS_KEY: [{"command": ["a"], "wall_seconds": 30.0,
                                                                      "status": "running"}]}
    now = merged_with({"commands": [["b"]], "wall_seconds": 10.0, RUNS_KEY: [{"command": ["b"], "wall_seconds": 10.0,
                                                                              "status": "finished"}]}, previous)
    assert now["wall_seconds"] == 40.0 and [r["status"] for r in now[RUNS_KEY]] == ["interrupted", "finished"]


def test_a_fold_record_sums_wall_time_keeps_the_highest_peaks_and_the_latest_machine():
    previous = {"commands": [["a"]], "wall_seconds": 30.0, "peak_host_memory_mib": 900.0, "peak_gpu_memory_mib": 90.0,
                OTHER_CPU_KEY: 0.2, "cpu_count": 8, "machine": {"cpu": "old"},
                RUNS_KEY: [{"command": ["a"], "status": "interrupted"}, {"command": ["a"], "status": "running"}]}
    record = {"commands": [["b"]], "wall_seconds": 10.0, "peak_host_memory_mib": 700.0, "peak_gpu_memory_mib": 80.0,
              OTHER_CPU_KEY: 1.5, "cpu_count": 2, "machine": {"cpu": "new"},
              RUNS_KEY: [{"command": ["b"], "status": "finished"}]}
    assert merged_with(record, previous) == {
        "commands": [["a"], ["b"]], "wall_seconds": 40.0, "peak_host_memory_mib": 900.0, "peak_gpu_memory_mib": 90.0,
        OTHER_CPU_KEY: 1.5, "cpu_count": 2, "machine": {"cpu": "new"},
        RUNS_KEY: [{"command": ["a"], "status": "interrupted"}, {"command": ["a"], "status": "interrupted"},
                   {"command": ["b"], "status": "finished"}]}


def test_a_record_from_before_runs_were_listed_still_merges():
    """Records of earlier versions have no run list (and the oldest no commands or wall time)."""
    old = {"peak_host_memory_mib": 100.0}
    record = {"commands": [["b"]], "wall_seconds": 2.0, "peak_host_memory_mib": 50.0}
    assert merged_with(record, old) == {"commands": [["b"]], "wall_seconds": 2.0, "peak_host_memory_mib": 100.0,
                                        RUNS_KEY: []}
    assert merged_with(record, None) is record


def test_a_refresh_racing_the_final_write_does_not_undo_it(tmp_path):
    recorder = measure.Recorder(tmp_path / "benchmark_resources.json", MISSING_DATASET)
    recorder.write("running")
    recorder.write("failed")
    recorder.write("running")  # the refresher thread, a moment late
    assert last_status(recorder.path) == "failed"


@pytest.mark.parametrize("arguments, cuda", [([], True), (["-device", "cuda"], True), (["-device", "cpu"], False),
                                             (["-device", "mps", "--c"], False)])
def test_the_machine_names_a_gpu_only_for_nnunets_cuda_device(arguments, cuda):
    assert measure._uses_cuda(["nnUNetv2_train", "1", "2d", "0", *arguments]) is cuda


def test_peak_host_memory_is_this_process_maximum_resident_size_in_mib():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = measure.peak_memory()
    assert before <= peak["peak_host_memory_mib"] <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert "peak_gpu_memory_mib" not in peak, "CUDA unused"


def test_a_killed_run_keeps_its_time_in_the_record_and_the_next_run_adds_to_it(tmp_path):
    """SIGKILL while nnU-Net starts (nothing to clean up with): the record refreshed while it ran stays; the next
    run (here one that fails at once) adds its own time instead of replacing the record."""
    record = tmp_path / "fold_0" / "benchmark_resources.json"
    command = [sys.executable, "-m", "nnunet_25d.benchmark.measure", "--record", str(record), "--every", "0.2", "--",
               *MISSING_DATASET]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (record.exists() and json.loads(record.read_text())["wall_seconds"] >= 1.0):
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = json.loads(record.read_text())
    assert killed[RUNS_KEY][-1]["status"] == "running" and killed["wall_seconds"] >= 1.0
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    both = json.loads(record.read_text())
    assert [run["status"] for run in both[RUNS_KEY]] == ["interrupted", "failed"]
    assert both["wall_seconds"] == pytest.approx(sum(run["wall_seconds"] for run in both[RUNS_KEY]))
    assert both["wall_seconds"] > killed["wall_seconds"] and len(both["commands"]) == 2
    assert not [p for p in record.parent.iterdir() if p.name.startswith(".partial")]


def test_sigterm_records_the_run_as_interrupted(tmp_path):
    record = tmp_path / "benchmark_resources.json"
    run = subprocess.Popen([sys.executable, "-m", "nnunet_25d.benchmark.measure", "--record", str(record), "--",
                            *MISSING_DATASET], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not record.exists():
        assert run.poll() is None and time.time() < deadline
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 128 + signal.SIGTERM and last_status(record) == "interrupted"


@pytest.fixture
def measure_in_process(tmp_path, monkeypatch):
    """``measure.main`` in this process on nnU-Net's real entry point, with a step run first inside it (where a
    signal can land); ``run.record`` is the record's path. pytest's signal handlers and torch's thread count (nnU-Net's
    ``-device cpu`` sets it) are restored afterwards. SIGINT raises KeyboardInterrupt meanwhile, as in a terminal (a
    shell without job control starts background commands with SIGINT ignored, and Python keeps that)."""
    nnunet_entry = run_training.run_training_entry
    monkeypatch.setattr(measure, "_TERMINATED_BY", [])
    monkeypatch.setattr(sys, "argv", sys.argv)
    pytest_handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    pytest_threads = torch.get_num_threads()
    record = tmp_path / "Dataset999_X" / "fold_0" / "benchmark_resources.json"  # folders made as needed

    def run(command: list[str], before_nnunet=lambda: None) -> None:
        def entry():
            before_nnunet()
            nnunet_entry()

        monkeypatch.setattr(run_training, "run_training_entry", entry)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            measure.main(["--record", str(record), *command])
        finally:
            for number, handler in pytest_handlers.items():
                signal.signal(number, handler)
            torch.set_num_threads(pytest_threads)

    run.record = record
    return run


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
    (run,) = recorded[RUNS_KEY]
    assert run["command"] == MISSING_DATASET and 0 < run["wall_seconds"] == recorded["wall_seconds"] < 60
    assert time.strptime(run["started"], "%Y-%m-%d %H:%M:%S") and recorded["machine"]["cores"] == os.cpu_count()
    assert recorded["peak_host_memory_mib"] > 0


def test_the_record_is_refreshed_while_nnunet_runs(measure_in_process):
    seen = []

    def look_at_the_record_a_while_later():
        time.sleep(0.5)
        seen.append(json.loads(measure_in_process.record.read_text()))

    with pytest.raises(RuntimeError):
        measure_in_process(["--every", "0.05", "--", *MISSING_DATASET], look_at_the_record_a_while_later)
    (refreshed,) = seen
    assert refreshed[RUNS_KEY][-1]["status"] == "running" and refreshed["wall_seconds"] >= 0.3
    assert measure_in_process.record.read_text().startswith('{\n  "'), "indented for reading"


def test_the_next_run_of_a_fold_adds_to_the_record_it_finds(measure_in_process):
    for _ in range(2):
        with pytest.raises(RuntimeError):
            measure_in_process(MISSING_DATASET)
    recorded = json.loads(measure_in_process.record.read_text())
    assert [run["status"] for run in recorded[RUNS_KEY]] == ["failed", "failed"]
    assert recorded["commands"] == [MISSING_DATASET] * 2


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
