"""``nnUNetv2_train --c`` / ``--val`` of a plugin trainer load the checkpoint as plain data: a pickle payload in it is
refused in one line and nothing of it runs (nnU-Net's own loader would run it)."""
from __future__ import annotations

import json
import os
import shutil

import torch

from tests.conftest import TINY_ID, TINY_TRAINER


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_val_refuses_a_checkpoint_with_a_payload_and_runs_none_of_it(nnunet, tiny_dataset, trained_slab_model, tmp_path):
    trainer = f"{TINY_TRAINER}_seed7"  # a model folder of its own, made from the trained one
    folder = nnunet.model_folder(tiny_dataset, trainer)
    shutil.copytree(trained_slab_model, folder)
    checkpoint_path = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    marker = tmp_path / "payload_ran"
    checkpoint["logging"] = Payload(marker)
    torch.save(checkpoint, checkpoint_path)
    result = nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "0", "-tr", trainer, "-device", "cpu", "--val",
                        check=False, training=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"checkpoint {checkpoint_path} holds more than weights") and "nothing of it was run" in last
    assert not marker.exists()


def test_val_of_a_plain_checkpoint_still_validates(nnunet, tiny_dataset, trained_slab_model):
    """The plain-data load hands nnU-Net the same checkpoint: --val reproduces the validation."""
    trainer = f"{TINY_TRAINER}_seed8"
    folder = nnunet.model_folder(tiny_dataset, trainer)
    shutil.copytree(trained_slab_model, folder)
    (folder / "fold_0" / "validation" / "summary.json").unlink()
    nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "0", "-tr", trainer, "-device", "cpu", "--val", training=True)
    rerun, original = (json.loads((model / "fold_0" / "validation" / "summary.json").read_text())
                       for model in (folder, trained_slab_model))
    assert rerun["mean"] == original["mean"] and rerun["foreground_mean"] == original["foreground_mean"]
