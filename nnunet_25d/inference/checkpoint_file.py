"""Checkpoint files: whether one can be read (without loading it; torch's files are zip archives), and loading one
without running code from it (``torch.load(weights_only=True)`` with an allow-list of the plain types nnU-Net's
checkpoints hold)."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from nnunet_25d.errors import UserError


def is_readable_checkpoint(path: Path) -> bool:
    """A torch checkpoint whose zip directory is intact: a file cut short by a full disk or a killed copy is not."""
    return path.is_file() and zipfile.is_zipfile(path)


def unreadable_checkpoint_message(path: Path, fix: str) -> str:
    return f"checkpoint {path} is truncated or corrupted (not a readable torch file): {fix}"


class CheckpointError(UserError, SystemExit):
    """A checkpoint that cannot be loaded safely: corrupted, or holding more than plain data (code to run on
    loading). One line naming the file and what to do.

    As a ``SystemExit`` (with the message as its code) it ends any process with that line and status 1, nnU-Net's
    own commands included; as a :class:`UserError` the ``nnunet25d`` command prints it in one line, and every
    ``except Exception`` still catches it.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.code = message


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle names a global outside the allow-list (a ``__reduce__`` payload, a custom class)."""


class CorruptCheckpointError(CheckpointError):
    """The checkpoint cannot be read: truncated, or its zip directory is intact but its data are not."""


def allowed_globals() -> list:
    """What nnU-Net's checkpoints hold beside tensors, dicts, lists, numbers, strings and ``torch.device`` (which
    torch allows anyway): numpy scalars (its logging of losses and Dice), their dtypes, and numpy arrays. Nothing
    here calls anything but numpy's own constructors of these values."""
    import numpy as np

    try:  # numpy 2 moved the pickled names under numpy._core; checkpoints written with numpy 1 name numpy.core
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray
    dtype_classes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUV"}
    return [np.dtype, np.ndarray, multiarray.scalar, multiarray._reconstruct, *sorted(dtype_classes, key=str)]


def _aliases(names: list) -> list:
    """numpy 1's module paths of the numpy 2 globals (a checkpoint written under numpy 1 names them)."""
    out = []
    for value in names:
        module = getattr(value, "__module__", "")
        if module.startswith("numpy._core"):
            out.append((value, module.replace("numpy._core", "numpy.core", 1) + "." + value.__name__))
    return out


def load_checkpoint_safely(path: str | Path, map_location: Any = "cpu") -> dict:
    """``torch.load(path, weights_only=True)`` with :func:`allowed_globals` allowed: nnU-Net's checkpoint dict
    (``network_weights``, ``logging``, ``init_args``, ...).

    Raises :class:`UnsafeCheckpointError` (a pickle naming any other global: nothing of it is run),
    :class:`CorruptCheckpointError` (truncated, or data that cannot be read) or :class:`FileNotFoundError`; each
    message is one line naming the file.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CorruptCheckpointError(unreadable_checkpoint_message(
            path, "it was cut short (full disk, killed copy); copy or train it again"))
    allowed = allowed_globals()
    allowed += _aliases(allowed)
    try:
        if hasattr(torch.serialization, "safe_globals"):  # torch >= 2.5: allowed for this load only
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location=map_location, weights_only=True)
        torch.serialization.add_safe_globals([value for value in allowed if not isinstance(value, tuple)])
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        name = unsupported_global(str(error))
        if name is not None:
            raise UnsafeCheckpointError(
                f"checkpoint {path} holds more than weights and plain values (its pickle names {name}, code that "
                f"loading would run): refused, nothing of it was run; use checkpoints only from a source you trust, "
                f"or train the model again") from None
        raise CorruptCheckpointError(unreadable_checkpoint_message(
            path, "its data cannot be read; copy or train it again")) from None
    except (RuntimeError, EOFError, KeyError, ValueError, UnicodeDecodeError, OSError, IndexError) as error:
        if isinstance(error, (PermissionError, IsADirectoryError)):
            raise
        raise CorruptCheckpointError(unreadable_checkpoint_message(
            path, "its data cannot be read; copy or train it again")) from None


def unsupported_global(message: str) -> str | None:
    """The global a weights-only load refused (``os.system``, ``builtins.exec``, a class), from torch's message."""
    import re

    for pattern in (r"Unsupported global: GLOBAL ([\w.]+)", r"unsupported GLOBAL ([\w.]+)", r"but got <class '([\w.]+)'>",
                    r"Trying to call reduce for ([\w.]+)", r"Unsupported class ([\w.]+)"):
        match = re.search(pattern, message)
        if match:
            return match.group(1)
    return None
