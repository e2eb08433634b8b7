"""``benchmarks/gpu_check.sh`` runs whenever a GPU is lent, for minutes: its ``--dry-run`` (the same code on CPU at
a tiny size) runs here so that it cannot rot."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_check.sh"


def test_the_gpu_check_runs_on_cpu_as_a_dry_run(tmp_path):
    out = tmp_path / "gpu_check.md"
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 10 and not any("FAILED" in row for row in rows)
    measured = [row for row in rows if row.rstrip().endswith("| ok |")]
    assert {row.split(" | ")[0].strip("| ") for row in measured} == {"nnU-Net 2d", "nnUNetTrainer25D"}
    assert sum("train step" in row for row in measured) == 4 and sum("predict" in row for row in measured) == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the check would run for minutes")
def test_the_gpu_check_refuses_to_run_without_a_gpu_unless_dry(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path / "x.md")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and "--dry-run" in result.stderr and not (tmp_path / "x.md").exists()
