"""What one benchmark task asks a cluster for (``--partition --account --time --mem --cpus --gpus``)."""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass

from nnunet_25d.errors import UserError

# sbatch --time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
TIME_FORMAT = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
MEMORY_FORMAT = re.compile(r"\d+[KMGT]?", re.IGNORECASE)  # sbatch --mem (no unit: megabytes)
# a SLURM partition (or comma-separated list) or account name: nothing that ends an #SBATCH line or means something to
# a shell (the values also reach the scripts submitit writes)
SLURM_NAME = re.compile(r"[A-Za-z0-9_.,:+@%-]+")
UNSAFE_IN_SCRIPT = re.compile(r"[\x00-\x1f\x7f]")  # newlines, carriage returns, other control characters


def time_minutes(text: str) -> int:
    """Minutes of an sbatch ``--time`` value, rounded up."""
    match = TIME_FORMAT.fullmatch(text)
    if match is None:
        raise ValueError(f"--time {text!r}: write it as sbatch does, e.g. 48:00:00, 2-00:00:00 or 90 (minutes)")
    days, first, second, third = match.groups()
    if days is not None:
        hours, minutes, seconds = first, second or 0, third or 0
    elif third is not None:
        hours, minutes, seconds = first, second, third
    else:
        hours, minutes, seconds = 0, first, second or 0
    total = ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + int(seconds)
    return max(1, math.ceil(total / 60))


def time_limit(text: str) -> str:
    """argparse type: an sbatch ``--time`` value, checked."""
    try:
        time_minutes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))
    return text


def memory(text: str) -> str:
    """argparse type: an sbatch ``--mem`` value, checked."""
    if MEMORY_FORMAT.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"--mem {text!r}: write it as sbatch does, e.g. 64G or 32000 (megabytes)")
    return text


def at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def check_slurm_name(option: str, value: str | None) -> None:
    """Refuse (one line) a partition or account name that would break, or add lines to, the ``#SBATCH`` header."""
    if value is not None and SLURM_NAME.fullmatch(value) is None:
        raise UserError(f"{option} {value!r}: refused, it is written into #SBATCH lines; a SLURM name holds letters, "
                        f"digits and _ . , : + @ % - only (no spaces, newlines, quotes or shell characters)")


def check_script_text(what: str, value: str) -> None:
    """Refuse (one line) a value (a path) that would end an ``#SBATCH`` line early: a newline or control
    character."""
    if UNSAFE_IN_SCRIPT.search(value):
        raise UserError(f"{what} {value!r}: refused, it goes into the SLURM scripts' #SBATCH lines and holds a newline "
                        f"or control character; choose a plain path")


@dataclass(frozen=True)
class Resources:
    """Per task; preprocessing and the collect step get the same without GPUs. The text values are checked when
    made: they are written into ``#SBATCH`` lines."""

    time: str = "48:00:00"
    memory: str = "64G"
    cpus: int = 8
    gpus: int = 1
    partition: str | None = None
    account: str | None = None
    array_parallelism: int | None = None  # tasks running at once (None: all)

    def __post_init__(self) -> None:
        check_slurm_name("--partition", self.partition)
        check_slurm_name("--account", self.account)
        if TIME_FORMAT.fullmatch(str(self.time)) is None:
            raise UserError(f"--time {self.time!r}: write it as sbatch does, e.g. 48:00:00, 2-00:00:00 or 90 (minutes)")
        if MEMORY_FORMAT.fullmatch(str(self.memory)) is None:
            raise UserError(f"--mem {self.memory!r}: write it as sbatch does, e.g. 64G or 32000 (megabytes)")

    @property
    def minutes(self) -> int:
        return time_minutes(self.time)

    def sbatch_options(self, gpus: bool = True) -> list[str]:
        """``#SBATCH`` option lines (without the array and the output file)."""
        options = [f"--partition={self.partition}" if self.partition else "",
                   f"--account={self.account}" if self.account else "",
                   f"--time={self.time}", f"--mem={self.memory}", f"--cpus-per-task={self.cpus}",
                   f"--gres=gpu:{self.gpus}" if gpus and self.gpus > 0 else ""]
        return [f"#SBATCH {option}" for option in options if option]


def add_resource_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster resources (--launch, --emit slurm), per task")
    group.add_argument("--partition", default=None, help="SLURM partition")
    group.add_argument("--account", default=None, help="SLURM account")
    group.add_argument("--time", type=time_limit, default=Resources.time, help="time limit (default: %(default)s)")
    group.add_argument("--mem", type=memory, default=Resources.memory, help="memory (default: %(default)s)")
    group.add_argument("--cpus", type=at_least(1), default=None,
                       help=f"CPUs per task (default: {Resources.cpus} on SLURM); nnU-Net's data augmentation "
                            f"gets the CPUs granted minus one (nnUNet_n_proc_DA, at least 1)")
    group.add_argument("--gpus", "--gpus-per-task", type=at_least(0), default=None,
                       help="GPUs per task (default: 1 with -device cuda, else 0); more than 1 trains with "
                            "nnU-Net's -num_gpus")
    group.add_argument("--array-parallelism", type=at_least(1), default=None,
                       help="at most this many tasks at once (default: all on SLURM, 1 with --launch local)")


def resources_from_args(args: argparse.Namespace) -> Resources:
    gpus = args.gpus if args.gpus is not None else (1 if args.device == "cuda" else 0)
    return Resources(args.time, args.mem, args.cpus or Resources.cpus, gpus, args.partition, args.account,
                     args.array_parallelism)
