"""Errors that are the user's to fix (a wrong name, a missing dataset, unset folders), as opposed to bugs.

The ``nnunet25d`` command prints these as one line on stderr and exits non-zero; anything else is a bug and keeps
its traceback. :func:`user_error_types` also counts the project's older error classes (slab size, plans
configuration, MorphMLP chunk sizes), nnU-Net commands that failed (their log has the details) and missing files.
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what is wrong and how to fix it."""


class TrainerNameError(UserError, LookupError):
    """A trainer name that looks like one of the plugin's but is not declared.

    Deliberately not an ``AttributeError``: nnU-Net looks trainers up with ``hasattr(module, name)``, which turns an
    ``AttributeError`` into "not here" (and then into nnU-Net's generic "Could not find requested nnunet trainer");
    any other exception reaches the user with this message.
    """


class DatasetNotFoundError(UserError, FileNotFoundError):
    """No ``DatasetXXX_*`` folder for the requested ID."""


def user_error_types() -> tuple[type[BaseException], ...]:
    from nnunet_25d.architectures.morph_mlp_layers import ChunkSizeError
    from nnunet_25d.configuration import ConfigurationError
    from nnunet_25d.runner import CommandFailed
    from nnunet_25d.slab import SlabSizeError

    return (UserError, SlabSizeError, ConfigurationError, ChunkSizeError, CommandFailed, FileNotFoundError,
            NotADirectoryError, PermissionError)
