"""The benchmark reads from each fold's training log what ran its final validation's network."""
from __future__ import annotations

from nnunet_25d.benchmark.collect import validation_engine
from nnunet_25d.trainers.slab_trainer import VALIDATION_ENGINE_LINE


def test_the_engine_the_slab_trainer_logged_is_read_back(tmp_path):
    (tmp_path / "training_log_2026_1_1_00_00_00.txt").write_text(
        f"2026-01-01 00:00:00.000000: Epoch 0\n2026-01-01 00:10:00.000000: {VALIDATION_ENGINE_LINE}ONNX Runtime\n"
        "2026-01-01 00:10:01.000000: predicting case_000\n")
    assert validation_engine(tmp_path) == "ONNX Runtime"


def test_a_log_that_says_nothing_is_nnunets_own_pytorch_predictor(tmp_path):
    (tmp_path / "training_log_2026_1_1_00_00_00.txt").write_text("2026-01-01 00:00:00.000000: Epoch 0\n")
    assert validation_engine(tmp_path) == "PyTorch"
