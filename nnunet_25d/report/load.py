"""CPU taken by other work while nnU-Net runs. A timing is only comparable when nothing else competed for the
cores, so the runner and the benchmark's measured runs sample how many cores *other* processes used (all CPU time
of the machine minus that of this process and its descendants: nnU-Net's own threads and data-augmentation
workers never count), and the report flags runs where that exceeded a quarter of the cores in any 30-s window.

The 1-minute load average is not used: it counts nnU-Net's own threads and lags, so it fired on clean runs."""
from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import psutil
from nnunet_25d.files import write_text_atomically

OTHER_CPU_KEY = "max_other_cpu_cores"  # keys of a fold's resource record (benchmark_resources.json)
CORES_KEY = "cpu_count"
CONTENTION_SHARE = 0.25  # other work above this share of the cores (any window) flags the timing
WINDOW_SECONDS = 30.0


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot, summed over cores (steal included: another VM's work
    slows us as much as another process's; guest time is already inside user/nice on Linux)."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    guests = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    return sum(times) - idle - guests


def tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU seconds of ``root`` and all its descendants, live or already waited for."""
    total = 0.0
    for process in [root, *_children(root)]:
        try:
            t = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # ended between listing and reading: its time is in its parent's children_* from now on
        total += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
    return total


def _children(root: psutil.Process) -> list[psutil.Process]:
    try:
        return root.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


class OtherCpuSampler:
    """``with OtherCpuSampler() as other: ...``: every ``interval`` seconds, reads the machine's and this process
    tree's CPU time; ``other.peak`` is the most cores other work used, averaged over any ``window`` seconds (over
    the whole run when it was shorter), and ``other.mean`` over the whole run. ``machine_cpu_seconds`` reads the
    machine's busy CPU seconds (:func:`busy_cpu_seconds`; tests give it a machine of known processes)."""

    def __init__(self, interval: float = 2.0, window: float = WINDOW_SECONDS, root_pid: int | None = None,
                 machine_cpu_seconds: Callable[[], float] | None = None):
        self.interval = interval
        self._machine_cpu_seconds = machine_cpu_seconds or busy_cpu_seconds
        self.window = window
        self.peak = float("nan")
        self.mean = float("nan")
        self._root = psutil.Process(root_pid or os.getpid())
        self._samples: deque[tuple[float, float]] = deque()  # (time, other CPU seconds so far)
        self._first: tuple[float, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> "OtherCpuSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(final=True)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, final: bool = False) -> None:
        now = (time.monotonic(), self._machine_cpu_seconds() - tree_cpu_seconds(self._root))
        self._first = self._first or now
        self._samples.append(now)
        while len(self._samples) > 2 and self._samples[1][0] <= now[0] - self.window:
            self._samples.popleft()  # keep the latest sample at least one window old as the window's start
        start = self._samples[0]
        if now[0] - start[0] >= self.window or (final and math.isnan(self.peak)):
            self._raise_peak(_cores(start, now))
        if final:
            self.mean = _cores(self._first, now)

    def _raise_peak(self, cores: float) -> None:
        if not math.isnan(cores) and not cores <= self.peak:  # NaN so far: the first value wins
            self.peak = cores


def _cores(start: tuple[float, float], end: tuple[float, float]) -> float:
    """Mean cores other work used between two samples (never negative: counters of exiting processes jitter)."""
    elapsed = end[0] - start[0]
    return max(end[1] - start[1], 0.0) / elapsed if elapsed > 0 else float("nan")


SLOWDOWN_CAP = 10.0  # a nearly saturated machine: "at least 10x", not a made-up larger factor
COMPARABLE_SLOWDOWN = 1.1  # two timings compare when the slowdowns their loads imply differ by less than this


def slowdown(other_cpu: float, cores: int) -> float:
    """How much longer CPU-bound work takes while other work keeps ``other_cpu`` of ``cores`` busy (1 = idle)."""
    free = cores - other_cpu
    return SLOWDOWN_CAP if free <= cores / SLOWDOWN_CAP else max(1.0, cores / free)


def comparable_load(a: float, b: float, cores: int | None) -> bool:
    """Two timings compare: neither was contended, or their loads slow the work down alike (within 10 %)."""
    if not (contended(a, cores) or contended(b, cores)):
        return True
    if math.isnan(a) or math.isnan(b):  # one run contended, the other's load not recorded
        return False
    fast, slow = sorted((slowdown(a, cores), slowdown(b, cores)))
    return slow / fast < COMPARABLE_SLOWDOWN


def contended(other_cpu: float, cores: int | None) -> bool:
    """Other work used more than ``CONTENTION_SHARE`` of the cores while the timing was taken."""
    return cores is not None and not math.isnan(other_cpu) and other_cpu > CONTENTION_SHARE * cores


def record_other_cpu(path: Path, peak: float, cores: int | None = None) -> None:
    """Add a run's peak other-work CPU to a fold's JSON record (other keys kept); a resumed fold keeps the
    highest."""
    record = json.loads(path.read_text()) if path.exists() else {}
    previous = record.get(OTHER_CPU_KEY)
    if not math.isnan(peak):
        record[OTHER_CPU_KEY] = peak if previous is None else max(previous, peak)
    record[CORES_KEY] = cores if cores is not None else os.cpu_count()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(record, indent=2))


def read_other_cpu(path: Path) -> tuple[float, int | None]:
    """(peak cores used by other work, cores) of a fold's record; (NaN, None) when none was recorded."""
    record = json.loads(path.read_text()) if path.exists() else {}
    peak = record.get(OTHER_CPU_KEY)
    return (float("nan") if peak is None else float(peak)), record.get(CORES_KEY)
