"""Cost tables name the engine that ran each model's network and never let an engine's speed-up pass for 2.5D's:
ratios between engines are marked, and the demo's reference gets a column against nnU-Net 2d as users run it."""
from __future__ import annotations

from nnunet_25d.report.rows import ModelRow
from nnunet_25d.report.tables import cost_table


def row(label: str, trainer: str, seconds_per_case: float, engine: str = "", **extra) -> ModelRow:
    return ModelRow(label, trainer, "2d", seconds_per_epoch=10.0, seconds_per_case=seconds_per_case, parameters=10 ** 6,
                    other_cpu=0.0, cores=2, engine=engine, baseline=trainer == "nnUNetTrainer", **extra)


def cells(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label}"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_a_ratio_between_different_engines_is_marked_and_one_on_the_same_engine_is_not():
    table = cost_table([row("nnU-Net 2d", "nnUNetTrainer", 4.0, "PyTorch"),
                        row("2.5D", "nnUNetTrainer25D", 1.0, "ONNX Runtime"),
                        row("2.5D torch", "nnUNetTrainer25D_5slices", 2.0, "PyTorch")])
    header = cells(table, "model")
    assert "engine" in header
    assert cells(table, "2.5D")[header.index("engine")] == "ONNX Runtime"
    case = header.index("case time vs nnU-Net 2d")
    assert cells(table, "2.5D")[case] == "0.25x (ONNX Runtime vs PyTorch: engines differ)"
    assert cells(table, "2.5D torch")[case] == "0.50x"


def test_the_reference_as_users_run_it_gets_its_own_column():
    table = cost_table([row("nnU-Net 2d", "nnUNetTrainer", 2.0, "ONNX Runtime", stock_seconds_per_case=8.0),
                        row("2.5D", "nnUNetTrainer25D", 3.0, "ONNX Runtime")])
    header = cells(table, "model")
    stock = next(i for i, name in enumerate(header) if "as users run it" in name)
    assert "8.00 s/case" in header[stock]
    assert cells(table, "2.5D")[stock] == "0.38x" and cells(table, "2.5D")[header.index("case time vs nnU-Net 2d")] \
        == "1.50x"


def test_without_engines_the_table_is_as_before():
    table = cost_table([row("nnU-Net 2d", "nnUNetTrainer", 2.0), row("2.5D", "nnUNetTrainer25D", 3.0)])
    assert "engine" not in table and "as users run it" not in table and "1.50x" in table
