"""Which network a checkpoint's weights were trained for: a checkpoint of an earlier version of a network is refused
in one line naming the retrain, instead of a page of ``load_state_dict`` mismatches (or, worse, a partial load).
The trainers' side (loading, then checking): :mod:`nnunet_25d.trainers.checkpoints`."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nnunet_25d.errors import SetupError


class EarlierArchitectureError(SetupError):
    """The checkpoint holds weights of another version of the network than the one the trainer builds."""


def bare_name(key: str) -> str:
    """A state-dict key without the prefixes DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) add."""
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def weight_shapes(weights: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {bare_name(k): tuple(v.shape) for k, v in weights.items()}


def check_same_architecture(weights: Mapping[str, torch.Tensor], network: nn.Module, what: str, retrain: str) -> None:
    """Raise :class:`EarlierArchitectureError` (one line: ``what`` changed, ``retrain``) unless ``weights`` has
    exactly ``network``'s parameter and buffer names and shapes."""
    stored, built = weight_shapes(weights), weight_shapes(network.state_dict())
    if stored != built:
        missing, unexpected = len(built.keys() - stored.keys()), len(stored.keys() - built.keys())
        reshaped = sum(1 for k in built.keys() & stored.keys() if built[k] != stored[k])
        raise EarlierArchitectureError(
            f"this checkpoint holds an earlier version of {what} ({missing} tensors missing, {unexpected} unexpected, "
            f"{reshaped} of another shape): {retrain}")
