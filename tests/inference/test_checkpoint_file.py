"""Checkpoints are loaded without running code from them: nnU-Net's real checkpoints load, a pickle payload is
refused (and not run), a corrupted file is one line naming it."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_25d.inference.checkpoint_file import CorruptCheckpointError, UnsafeCheckpointError, \
    load_checkpoint_safely

LEGACY = (Path(__file__).parents[1] / "fixtures" / "legacy_model_v0_1" / "Dataset969_Synthetic25D"
          / "nnUNetTrainer25D_2epochs_5iters__nnUNetPlans__2d" / "fold_0" / "checkpoint_final.pth")


class Payload:
    """Unpickling this creates a file (what a malicious checkpoint would do with os.system)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return exec, (f"open({str(self.target)!r}, 'w').close()",)


def test_a_real_nnunet_checkpoint_loads_with_its_numpy_values():
    checkpoint = load_checkpoint_safely(LEGACY)
    assert set(checkpoint) >= {"network_weights", "logging", "init_args", "trainer_name", "current_epoch"}
    assert isinstance(checkpoint["_best_ema"], np.floating)
    assert isinstance(checkpoint["init_args"]["device"], torch.device)


def test_numpy_arrays_scalars_and_dtypes_load(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save({"a": np.zeros(3), "b": np.int64(3), "c": np.dtype("f4"), "w": torch.ones(2)}, path)
    loaded = load_checkpoint_safely(path)
    assert loaded["b"] == 3 and loaded["c"] == np.dtype("f4") and loaded["a"].shape == (3,)


def test_a_pickle_payload_is_refused_and_not_run(tmp_path):
    target = tmp_path / "payload_ran"
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {}, "x": Payload(target)}, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_checkpoint_safely(path)
    assert not target.exists()
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "exec" in message and "refused" in message


def test_a_truncated_checkpoint_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    data = LEGACY.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError) as error:
        load_checkpoint_safely(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("member", ["data/0", "data.pkl"])
def test_a_checkpoint_corrupted_inside_its_intact_zip_is_one_line(tmp_path, member):
    """The zip directory still reads (zipfile.is_zipfile), the data do not: torch's PytorchStreamReader error or a
    broken pickle becomes one line naming the file."""
    path = tmp_path / "checkpoint_final.pth"
    shutil.copy(LEGACY, path)
    info = next(i for i in zipfile.ZipFile(path).infolist() if i.filename.endswith("/" + member))
    offset = info.header_offset if member == "data/0" else info.header_offset + 100
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(b"\xff" * 16)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CorruptCheckpointError) as error:
        load_checkpoint_safely(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_the_refusals_end_any_process_with_their_line(tmp_path):
    """As SystemExit with the message as its code: nnU-Net's own commands print that line and exit 1."""
    path = tmp_path / "c.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as error:
        load_checkpoint_safely(path)
    assert error.value.code == str(error.value)


def test_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint_safely(tmp_path / "none.pth")
