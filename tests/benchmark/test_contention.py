"""The flag for timings that shared the CPUs, measured on real processes: a busy loop outside this process tree
counts as other work, nnU-Net-like work inside it (this process and its children) does not. The sampler reads a
machine made of known processes, so what else runs on the real machine cannot change these tests' outcome."""
from __future__ import annotations

import math
import resource
import subprocess
import sys
import time

import psutil
import pytest

from nnunet_25d.report.load import OtherCpuSampler, _cores, busy_cpu_seconds, contended, tree_cpu_seconds

BUSY_LOOP = "while True: pass"


def start_outside_this_tree(code: str) -> psutil.Process:
    """A Python process that is no descendant of this one (started by a shell that exits at once)."""
    shell = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{code}" >/dev/null 2>&1 & echo $!'],
                           capture_output=True, text=True, check=True)
    process = psutil.Process(int(shell.stdout))
    assert process.pid not in {p.pid for p in psutil.Process().children(recursive=True)}
    return process


def process_cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def own_machine_with_waited_children():
    """This process and its children as the kernel accounts them for the whole process (live children from
    psutil, finished and waited ones from getrusage): continuous across a child's end, by another route than
    :func:`tree_cpu_seconds`."""
    me = psutil.Process()

    def busy_cpu_seconds() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        waited = resource.getrusage(resource.RUSAGE_CHILDREN)
        live = 0.0
        for child in me.children(recursive=True):
            try:
                live += process_cpu_seconds(child)
            except psutil.NoSuchProcess:
                pass
        return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime + live

    return busy_cpu_seconds


def machine_of(*outside: psutil.Process):
    """A machine whose busy CPU time is that of this process tree and of the given processes outside it alone:
    what other work the real machine runs (other tests, other users) cannot reach the sampler, so the expected
    readings hold on a busy machine too."""
    own = own_machine_with_waited_children()

    def busy_cpu_seconds() -> float:
        return own() + sum(process_cpu_seconds(p) for p in outside)

    return busy_cpu_seconds


def sampled_while(seconds: float, machine, window: float = 1.0) -> OtherCpuSampler:
    with OtherCpuSampler(interval=0.1, window=window, machine_cpu_seconds=machine) as sampler:
        time.sleep(seconds)
    return sampler


def test_a_busy_process_outside_the_tree_is_other_work():
    busy = start_outside_this_tree(BUSY_LOOP)
    try:
        time.sleep(0.3)
        before, started = process_cpu_seconds(busy), time.monotonic()
        sampler = sampled_while(2.5, machine_of(busy))
        used = (process_cpu_seconds(busy) - before) / (time.monotonic() - started)
    finally:
        busy.kill()
    assert used > 0.2  # it ran (on an idle machine about one core)
    assert sampler.mean == pytest.approx(used, abs=0.1)  # the busy process's own CPU rate, read by psutil
    assert sampler.peak >= sampler.mean - 0.1


def test_work_of_this_process_tree_is_not_other_work():
    """nnU-Net's own threads and workers (here: a busy child, and this process sleeping) never raise the flag -
    the 1-minute load average, which counted them, flagged clean runs."""
    child = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(0.3)
        before = process_cpu_seconds(psutil.Process(child.pid))
        sampler = sampled_while(2.5, machine_of())
        used = process_cpu_seconds(psutil.Process(child.pid)) - before
    finally:
        child.kill()
        child.wait()
    assert used > 0.5  # the child was busy ...
    assert sampler.peak < 0.05 and not contended(sampler.peak, 2)  # ... and none of it is other work


def test_a_child_that_ends_during_the_run_stays_own_work():
    """A finished child's CPU time moves to its parent's children_* counters: it must not turn into other work."""
    with OtherCpuSampler(interval=0.1, window=10.0, machine_cpu_seconds=own_machine_with_waited_children()) as sampler:
        subprocess.run([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"],
                       check=True)
        time.sleep(0.3)
    assert sampler.peak < 0.1  # a shorter run than the window: measured over the whole run


def test_the_peak_is_over_windows_and_the_mean_over_the_run():
    """Other work of one core for the first ~1.2 s of a ~3 s run: the 1-s window that holds the busy part reads
    ~1 core, the run's mean well under it (an injected clock of other work: the same on any machine)."""
    start = time.monotonic()
    me = psutil.Process()

    def one_core_for_the_first_1_2_seconds() -> float:
        return tree_cpu_seconds(me) + min(time.monotonic() - start, 1.2)

    with OtherCpuSampler(interval=0.1, window=1.0, machine_cpu_seconds=one_core_for_the_first_1_2_seconds) as sampler:
        time.sleep(3.0)
    assert sampler.peak == pytest.approx(1.0, abs=0.15)
    assert sampler.mean == pytest.approx(1.2 / 3.0, abs=0.1)


def test_the_default_machine_counter_is_the_whole_machine():
    """Without an injected counter the sampler reads :func:`busy_cpu_seconds` (all CPU time of the machine)."""
    sampler = OtherCpuSampler()
    assert sampler._machine_cpu_seconds is busy_cpu_seconds
    assert busy_cpu_seconds() >= tree_cpu_seconds(psutil.Process())


@pytest.mark.parametrize("other_cpu, cores, flagged", [(0.51, 2, True), (0.5, 2, False), (2.01, 8, True),
                                                       (float("nan"), 2, False), (3.0, None, False)])
def test_contention_is_a_quarter_of_the_cores(other_cpu, cores, flagged):
    assert contended(other_cpu, cores) == flagged


def test_the_runner_records_each_commands_other_work_under_its_log_name(tmp_path, monkeypatch):
    """The command the runner starts is its own work, however busy: the demo's trainings are not flagged by
    themselves."""
    from nnunet_25d.benchmark.runner import NNUNetRunner
    from nnunet_25d.report import load

    monkeypatch.setattr(load, "busy_cpu_seconds", own_machine_with_waited_children())
    runner = NNUNetRunner(tmp_path)
    runner.run([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"],
               "busy_command")
    assert list(runner.other_cpu) == ["busy_command"] and 0.0 <= runner.other_cpu["busy_command"] < 0.1


def test_cores_between_two_samples_by_hand():
    assert _cores((10.0, 3.0), (10.5, 3.25)) == 0.5  # 0.25 CPU-seconds in 0.5 s
    assert _cores((10.0, 3.0), (12.0, 2.5)) == 0.0  # counters of exiting processes jitter: never negative
    assert math.isnan(_cores((10.0, 3.0), (10.0, 3.5)))  # no time passed: undefined, not a division by zero



def test_these_tests_pass_while_other_work_keeps_every_core_busy():
    """The readings above come from machines of known processes: a machine busy with other work changes nothing."""
    busy = [start_outside_this_tree(BUSY_LOOP) for _ in range(psutil.cpu_count() or 1)]
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                                 "-k", "not every_core"], capture_output=True, text=True, timeout=600)
    finally:
        for process in busy:
            process.kill()
    assert result.returncode == 0, result.stdout[-3000:]
