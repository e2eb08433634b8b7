"""The flag for timings that shared the CPUs, measured on real processes: a busy loop outside this process tree
counts as other work, nnU-Net-like work inside it (this process and its children) does not."""
from __future__ import annotations

import math
import subprocess
import sys
import time

import psutil
import pytest

from nnunet_25d.report.load import OtherCpuSampler, _cores, contended

BUSY_LOOP = "while True: pass"


def start_outside_this_tree(code: str) -> psutil.Process:
    """A Python process that is no descendant of this one (started by a shell that exits at once)."""
    shell = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{code}" >/dev/null 2>&1 & echo $!'],
                           capture_output=True, text=True, check=True)
    process = psutil.Process(int(shell.stdout))
    assert process.pid not in {p.pid for p in psutil.Process().children(recursive=True)}
    return process


def sampled_while(seconds: float, window: float = 1.0) -> OtherCpuSampler:
    with OtherCpuSampler(interval=0.1, window=window) as sampler:
        time.sleep(seconds)
    return sampler


def test_a_busy_process_outside_the_tree_is_other_work_and_flags_two_cores():
    busy = start_outside_this_tree(BUSY_LOOP)
    try:
        time.sleep(0.3)
        sampler = sampled_while(2.5)
    finally:
        busy.kill()
    assert 0.7 < sampler.peak < 1.3  # one core, averaged over 1-s windows
    assert 0.6 < sampler.mean <= sampler.peak + 1e-9
    assert contended(sampler.peak, 2) and not contended(sampler.peak, 8)


def test_work_of_this_process_tree_is_not_other_work():
    """nnU-Net's own threads and workers (here: a busy child, and this process sleeping) never raise the flag -
    the 1-minute load average, which counted them, flagged clean runs."""
    child = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(0.3)
        sampler = sampled_while(2.5)
    finally:
        child.kill()
        child.wait()
    assert sampler.peak < 0.3 and not contended(sampler.peak, 2)


def test_a_child_that_ends_during_the_run_stays_own_work():
    """A finished child's CPU time moves to its parent's children_* counters: it must not turn into other work."""
    with OtherCpuSampler(interval=0.1, window=10.0) as sampler:
        subprocess.run([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"],
                       check=True)
        time.sleep(0.3)
    assert sampler.peak < 0.3  # a shorter run than the window: measured over the whole run


def test_the_peak_is_over_windows_and_the_mean_over_the_run():
    """Busy for the first ~1.2 s of a ~3 s run: the 1-s window that holds the busy part reads ~1 core, the run's
    mean well under it."""
    with OtherCpuSampler(interval=0.1, window=1.0) as sampler:
        busy = start_outside_this_tree(BUSY_LOOP)
        time.sleep(1.2)
        busy.kill()
        time.sleep(1.8)
    assert sampler.peak > 0.7 and sampler.mean < 0.6


@pytest.mark.parametrize("other_cpu, cores, flagged", [(0.51, 2, True), (0.5, 2, False), (2.01, 8, True),
                                                       (float("nan"), 2, False), (3.0, None, False)])
def test_contention_is_a_quarter_of_the_cores(other_cpu, cores, flagged):
    assert contended(other_cpu, cores) == flagged


def test_the_runner_records_each_commands_other_work_under_its_log_name(tmp_path):
    """The command the runner starts is its own work, however busy: the demo's trainings are not flagged by
    themselves."""
    from nnunet_25d.benchmark.runner import NNUNetRunner

    runner = NNUNetRunner(tmp_path)
    runner.run([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"],
               "busy_command")
    assert list(runner.other_cpu) == ["busy_command"] and 0.0 <= runner.other_cpu["busy_command"] < 0.3


def test_cores_between_two_samples_by_hand():
    assert _cores((10.0, 3.0), (10.5, 3.25)) == 0.5  # 0.25 CPU-seconds in 0.5 s
    assert _cores((10.0, 3.0), (12.0, 2.5)) == 0.0  # counters of exiting processes jitter: never negative
    assert math.isnan(_cores((10.0, 3.0), (10.0, 3.5)))  # no time passed: undefined, not a division by zero

