"""How the plugin's trainers load a checkpoint (``nnUNetv2_train --c`` / ``--val``): as plain data first (nnU-Net's
own loader runs whatever a checkpoint's pickle names), and only a checkpoint that holds nothing else goes on to
nnU-Net's ``load_checkpoint`` (which, in 2.8.1, cannot take the loaded dict: it reads the file again). A trainer may
check the checkpoint before it is used."""
from __future__ import annotations

from pathlib import Path

from nnunet_25d.architectures.checkpoints import check_same_architecture
from nnunet_25d.inference.checkpoint_file import load_checkpoint_safely


class SafeCheckpointLoading:
    """Mixin, before nnU-Net's trainer in the bases."""

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        checkpoint = filename_or_checkpoint
        if isinstance(checkpoint, (str, Path)):
            checkpoint = load_checkpoint_safely(checkpoint, map_location=self.device)
            filename_or_checkpoint = str(filename_or_checkpoint)
        self.check_checkpoint(checkpoint)
        super().load_checkpoint(filename_or_checkpoint)

    def check_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint this trainer cannot continue from (nothing to check by default)."""


class RefusesOtherArchitectures(SafeCheckpointLoading):
    """A checkpoint whose weights are not this trainer's network's is refused in one line naming the retrain."""

    def check_checkpoint(self, checkpoint: dict) -> None:
        if not self.was_initialized:
            self.initialize()
        name = type(self).__name__
        check_same_architecture(
            checkpoint["network_weights"], self.network, f"{name}'s network",
            f"retrain it (nnUNetv2_train DATASET CONFIGURATION FOLD -tr {name}, without --c), or predict with the "
            f"model folder it was trained in (its plans.json names its network)")
