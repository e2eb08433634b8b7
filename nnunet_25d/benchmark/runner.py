"""Run nnU-Net's own commands in subprocesses, with their output in log files and progress on screen."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.errors import CommandFailed, last_nonempty_line  # noqa: F401 (re-exported)
from nnunet_25d.report.load import OtherCpuSampler

EPOCH_LINE = re.compile(r"Epoch (\d+)\s*$")
NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
RUN_MARKER = "$ "  # each run's first line in its log: the command (a log holds every run of its step, appended)
# what nnU-Net prints before it raises (often a bare RuntimeError): "ERROR! Not all input images have the same
# shape!", verify_dataset_integrity's "Error: Unexpected labels found in file ..."
PRINTED_ERROR = re.compile(r"^\s*(?:ERROR!|ERROR:|Error:)\s*(.*)$")
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit)\b(?::\s*(.*))?$")
REASON_CHARACTERS = 400


def this_run(lines: list[str]) -> list[str]:
    """The lines of a log's last run (from its last command line on)."""
    starts = [i for i, line in enumerate(lines) if line.startswith(RUN_MARKER)]
    return lines[starts[-1]:] if starts else lines


def _one_line(parts: list[str]) -> str:
    text = " ".join(" ".join(part.split()) for part in parts if part.strip())
    return text if len(text) <= REASON_CHARACTERS else text[:REASON_CHARACTERS - 3] + "..."


def _paragraph(lines: list[str], start: int, first: str) -> list[str]:
    """``first`` and the lines after ``start`` up to a blank line, a traceback or the next error."""
    parts = [first]
    for line in lines[start + 1:]:
        if not line.strip() or "Traceback" in line or PRINTED_ERROR.match(line) or EXCEPTION_LINE.match(line.strip()):
            break
        parts.append(line)
    return parts


def exception_message(lines: list[str]) -> str | None:
    """The message of the last traceback's exception (its lines joined), None if it has none."""
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return None
    for i in range(starts[-1] + 1, len(lines)):
        line = lines[i]
        if line[:1].isspace() or not line.strip():
            continue
        match = EXCEPTION_LINE.match(line.strip())
        if match is None:
            return None
        if not match.group(1):  # a bare `RuntimeError`: nnU-Net printed the reason above it
            return None
        return _one_line(_paragraph(lines, i, line.strip()))
    return None


def failure_reason(lines: list[str]) -> str:
    """One line saying why an nnU-Net command failed, from its log: what nnU-Net printed as an error before raising
    (with the lines that belong to it), else the message of the exception it raised, else the last line."""
    lines = this_run(lines)
    for i, line in enumerate(lines):
        match = PRINTED_ERROR.match(line)
        if match and match.group(1).strip():
            return _one_line(_paragraph(lines, i, match.group(1)))
    return exception_message(lines) or last_nonempty_line(lines)


class NNUNetStepFailed(CommandFailed):
    """A failed nnU-Net command whose one-line summary quotes the reason from this run's part of its log (not just
    its last line, which is often a bare ``RuntimeError``)."""

    def __init__(self, args: list[str], returncode: int, log_path: Path):
        super().__init__(args, returncode, log_path)
        lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
        self.last_line = failure_reason(lines) or self.last_line


def trainer_lookup_path(existing: str | None) -> str:
    """``nnUNet_extTrainer`` with the plugin's trainer folder first (the user's own folders kept after it)."""
    return str(TRAINER_FOLDER) if not existing else f"{TRAINER_FOLDER}{os.pathsep}{existing}"


def child_env_unbuffered(env: dict) -> dict:
    """Python children write each line as it comes (a pipe would make their stdout block-buffered): progress bars
    move and ``tail -f`` on the logs shows training as it runs."""
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class NNUNetRunner:
    """Environment (nnU-Net folders, plugin lookup, CPU-friendly worker counts) and a log folder."""

    log_dir: Path
    raw: str | None = None
    preprocessed: str | None = None
    results: str | None = None
    device: str = "cpu"
    extra_env: dict = field(default_factory=dict)
    # called with one line (the command, its log) as each command starts; the demo and the benchmark print it
    announce: Callable[[str], None] | None = None
    # log name -> most cores other processes used while that command ran (the report flags shared CPUs)
    other_cpu: dict[str, float] = field(default_factory=dict)

    def env(self, training: bool = False) -> dict:
        env = dict(os.environ)
        for name, value in (("nnUNet_raw", self.raw), ("nnUNet_preprocessed", self.preprocessed),
                            ("nnUNet_results", self.results)):
            if value is not None:
                env[name] = str(value)
        env["nnUNet_extTrainer"] = trainer_lookup_path(env.get("nnUNet_extTrainer"))
        if self.device == "cpu":
            env.setdefault("nnUNet_def_n_proc", "1")
            if training:
                env.setdefault("nnUNet_n_proc_DA", "0")
        if not training and env.get("nnUNet_n_proc_DA") == "0":
            del env["nnUNet_n_proc_DA"]  # the planner calls torch.set_num_threads(nnUNet_n_proc_DA) and crashes on 0
        env.update(self.extra_env)
        return child_env_unbuffered(env)

    def run(self, args: list[str], log_name: str, training: bool = False, total_epochs: int | None = None) -> float:
        """Run ``args``; return its wall time in seconds. With ``total_epochs``, show an epoch progress bar."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{log_name}.log"
        start = time.perf_counter()
        if self.announce is not None:
            self.announce(f"$ {shlex.join(args)}  (log: {log_path})")
        bar = tqdm(total=total_epochs, desc=log_name, unit="epoch", leave=False) if total_epochs else None
        appended = log_path.is_file() and log_path.stat().st_size > 0  # an earlier run's log stays above this one
        with open(log_path, "a", buffering=1) as log, OtherCpuSampler() as other:  # line-buffered for `tail -f`
            if appended:
                log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')}: run again, appended\n")
            log.write(RUN_MARKER + shlex.join(args) + "\n")
            process = subprocess.Popen(args, env=self.env(training), stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, bufsize=1)
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                match = EPOCH_LINE.search(line)
                if bar is not None and match:
                    bar.n = int(match.group(1))
                    bar.refresh()
            returncode = process.wait()
        self.other_cpu[log_name] = other.peak
        if bar is not None:
            bar.close()
        if returncode != 0:
            raise NNUNetStepFailed(args, returncode, log_path)
        return time.perf_counter() - start
