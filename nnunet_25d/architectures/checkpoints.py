"""Which network a checkpoint's weights were trained for: a checkpoint of an earlier version of a network is refused
in one line naming the retrain, instead of a page of ``load_state_dict`` mismatches (or, worse, a partial load)."""
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


class RefusesOtherArchitectures:
    """Mixin for an nnU-Net trainer (put it before the trainer in the bases): ``load_checkpoint`` (``--c``,
    ``--val``) first refuses, in one line naming the retrain, a checkpoint whose weights are not this trainer's
    network's, then loads as nnU-Net does."""

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        if not self.was_initialized:
            self.initialize()
        checkpoint = filename_or_checkpoint
        if isinstance(checkpoint, str):
            checkpoint = torch.load(checkpoint, map_location=self.device, weights_only=False)
        name = type(self).__name__
        check_same_architecture(
            checkpoint["network_weights"], self.network, f"{name}'s network",
            f"retrain it (nnUNetv2_train DATASET CONFIGURATION FOLD -tr {name}, without --c), or predict with the "
            f"model folder it was trained in (its plans.json names its network)")
        super().load_checkpoint(filename_or_checkpoint)
