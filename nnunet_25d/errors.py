"""Errors that are the user's to fix (a wrong name, a missing dataset, unset folders), as opposed to bugs.

The ``nnunet25d`` command prints these as one line on stderr and exits non-zero; anything else is a bug and keeps
its traceback. :func:`user_error_types` also counts :class:`SetupError` (slab size, plans configuration, MorphMLP
chunk sizes), nnU-Net commands that failed (their log has the details) and missing files.
"""
from __future__ import annotations


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


class TrainerNameError(UserError, LookupError):
    """A trainer name that looks like one of the plugin's but is not declared.

    Deliberately not an ``AttributeError``: nnU-Net looks trainers up with ``hasattr(module, name)``, which turns an
    ``AttributeError`` into "not here" (and then into nnU-Net's generic "Could not find requested nnunet trainer");
    any other exception reaches the user with this message.
    """


class DatasetNotFoundError(UserError, FileNotFoundError):
    """No ``DatasetXXX_*`` folder for the requested ID."""


def user_error_types() -> tuple[type[BaseException], ...]:
    kinds: tuple[type[BaseException], ...] = (UserError, SetupError, FileNotFoundError, NotADirectoryError,
                                              PermissionError)
    try:
        from nnunet_25d.runner import CommandFailed
    except ImportError:  # the deployment runtime alone (`predict-onnx`): no nnU-Net commands to fail
        return kinds
    return (*kinds, CommandFailed)
