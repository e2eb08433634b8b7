"""``scripts/check_cpu_install.sh`` (CI runs it on a fresh virtualenv) can fail: a training that raises fails it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_cpu_install.sh"


@pytest.mark.integration
def test_the_install_check_fails_when_its_tiny_training_fails():
    env = {**os.environ, "CHECK_PYTHON": sys.executable, "CHECK_TRAINERS": "nnUNetTrainer25D_4slices_2epochs_5iters"}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "nnUNetv2_train of nnUNetTrainer25D_4slices_2epochs_5iters failed" in result.stdout
    assert "positive odd number" in result.stdout  # the training's own error, quoted from its log
    assert "trained and predicted" not in result.stdout
