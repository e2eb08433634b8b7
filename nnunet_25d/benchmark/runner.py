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
        with open(log_path, "w", buffering=1) as log, OtherCpuSampler() as other:  # line-buffered for `tail -f`
            log.write("$ " + shlex.join(args) + "\n")
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
            raise CommandFailed(args, returncode, log_path)
        return time.perf_counter() - start
