"""Errors that are the user's to fix (a wrong name, a missing dataset, unset folders), as opposed to bugs.

The ``nnunet25d`` command prints these as one line on stderr and exits non-zero; anything else is a bug and keeps
its traceback. :func:`user_error_types` also counts :class:`SetupError` (slab size, plans configuration, MorphMLP
chunk sizes), nnU-Net commands that failed (their log has the details) and missing files.
"""
from __future__ import annotations

import shlex
from pathlib import Path


class UserError(Exception):
    """Something the user can fix; the message says what is wrong and how to fix it."""


class SetupError(SystemExit, ValueError):
    """A setting the plugin's trainers and networks cannot work with (plans, slab size, patch size).

    These are raised inside nnU-Net's own commands (``nnUNetv2_train`` builds the trainer, ``nnUNetv2_predict`` the
    network), whose tracebacks would bury the message. As a ``SystemExit`` the interpreter prints the message alone
    and exits with status 1; as a ``ValueError`` every ``except ValueError`` / ``except Exception`` still catches it.
    """


class PreprocessedDataMissing(SetupError):
    """The configuration a trainer trains on has no preprocessed data; the message names the command."""


class TrainerNameError(UserError, LookupError, SystemExit):
    """A trainer name that looks like one of the plugin's but is not declared.

    Deliberately not an ``AttributeError``: nnU-Net looks trainers up with ``hasattr(module, name)``, which turns an
    ``AttributeError`` into "not here" (and then into nnU-Net's generic "Could not find requested nnunet trainer");
    any other exception reaches the user with this message. As a ``SystemExit`` it ends nnU-Net's own commands
    (``nnUNetv2_train -tr <misspelled>``) with this one line and status 1, no traceback; as an ``Exception`` every
    ``except Exception`` still catches it.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.code = message  # what the interpreter prints for an uncaught SystemExit (else it exits 0, silently)


class ImageError(UserError, ValueError):
    """An input image the model cannot take: the wrong number of channels or dimensions, mismatched channels."""


class NotExportable(UserError, ValueError):
    """A model whose network or pipeline the ONNX runtime does not reproduce; the message says what and why."""


class GraphMismatch(RuntimeError):
    """An exported ONNX graph that does not compute what the torch network computes."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """No ``DatasetXXX_*`` folder for the requested ID."""


def last_nonempty_line(lines: list[str]) -> str:
    """A log's last line with text (usually the error), stripped; "" for a log without any."""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


class CommandFailed(RuntimeError):
    """An nnU-Net command exited non-zero; the message names the command and its log (then the log's tail)."""

    def __init__(self, args: list[str], returncode: int, log_path: Path):
        lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
        tail = "\n".join(lines[-15:])
        super().__init__(f"`{shlex.join(args)}` failed (exit {returncode}); full log: {log_path}\n{tail}")
        self.args_run, self.returncode, self.log_path = list(args), returncode, log_path
        self.last_line = last_nonempty_line(lines)

    @property
    def summary(self) -> str:
        """One line: which command failed, its last log line (usually the error), where the log is."""
        last = f": {self.last_line}" if self.last_line else ""
        return f"{self.args_run[0]} failed (exit {self.returncode}){last}; full log: {self.log_path}"


def user_error_types() -> tuple[type[BaseException], ...]:
    return (UserError, SetupError, FileNotFoundError, NotADirectoryError, PermissionError, CommandFailed)
