"""System load while nnU-Net runs. Timings taken while the 1-minute load average exceeded the machine's cores
were slowed by other work: the runner and the benchmark's measured runs sample it, the report flags them."""
from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

LOAD_KEY = "max_load_1min"  # keys of a fold's resource record (benchmark_resources.json)
CORES_KEY = "cpu_count"


def one_minute_load() -> float:
    """The 1-minute load average (NaN where the OS has none, e.g. Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


class LoadSampler:
    """``with LoadSampler() as load: ...``: samples the 1-minute load average when entered, every ``interval``
    seconds in a background thread, and when left; ``load.peak`` is the highest value seen."""

    def __init__(self, interval: float = 2.0):
        self.interval = interval
        self.peak = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> "LoadSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        value = one_minute_load()
        if not math.isnan(value) and not value <= self.peak:  # NaN peak: the first sample wins
            self.peak = value


def exceeds_cores(load: float, cores: int | None) -> bool:
    return cores is not None and not math.isnan(load) and load > cores


def record_load(path: Path, peak: float, cores: int | None = None) -> None:
    """Add a run's peak load to a fold's JSON record (other keys kept); a resumed fold keeps the highest."""
    record = json.loads(path.read_text()) if path.exists() else {}
    previous = record.get(LOAD_KEY)
    if not math.isnan(peak):
        record[LOAD_KEY] = peak if previous is None else max(previous, peak)
    record[CORES_KEY] = cores if cores is not None else os.cpu_count()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))


def read_load(path: Path) -> tuple[float, int | None]:
    """(peak 1-minute load, cores) of a fold's record; (NaN, None) when none was recorded."""
    record = json.loads(path.read_text()) if path.exists() else {}
    peak = record.get(LOAD_KEY)
    return (float("nan") if peak is None else float(peak)), record.get(CORES_KEY)
