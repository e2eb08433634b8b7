"""The head of a Markdown report: title, the two-sentence reading, data and classes, machine, load warning."""
from __future__ import annotations

from nnunet_25d.report.interpretation import reading
from nnunet_25d.report.machine import Machine
from nnunet_25d.report.metrics import Metric
from nnunet_25d.report.rows import Difference, ModelRow, finite
from nnunet_25d.report.setting import ReportSetting
from nnunet_25d.report.tables import cost_table, scores_table


def data_section(setting: ReportSetting, splits: list[str]) -> str:
    classes = ", ".join(f"**{name}** = {what}" for name, what in setting.classes.items())
    description = f" Description (dataset.json): {setting.description.rstrip('.')}." if setting.description else ""
    return (f"**Data.** {setting.dataset} (ID {setting.dataset_id}), "
            f"{' and '.join(setting.split_title(s) for s in splits)}; schedule {setting.schedule}. "
            f"Classes (dataset.json `labels`): {classes or 'none listed'}.{description}")


def machine_section(machines: tuple[Machine, ...] | list[Machine]) -> str:
    if not machines:
        return "**Machine.** not recorded."
    if len(machines) == 1:
        return f"**Machine.** {machines[0].describe()}."
    return "**Machines** (the runs were spread over them):\n" + "\n".join(f"- {m.describe()}" for m in machines)


def load_warning(rows: list[ModelRow]) -> str:
    """A visible warning naming each model whose timings were taken while the load exceeded the cores."""
    loaded = [r for r in rows if r.loaded]
    if loaded:
        which = "; ".join(f"{r.label} (max 1-min load {r.max_load:.1f} on {r.cores} cores)" for r in loaded)
        return (f"> **⚠ Timings taken under load:** {which}. Other work shared the CPUs while these ran, so their "
                f"s/epoch and s/case (and the ratios) are slower than on an idle machine; rerun them alone for "
                f"timings you can compare.")
    if not any(finite(r.max_load) for r in rows):
        return "Load during the runs: not recorded (trained outside `nnunet25d`, or by an older version)."
    return "Load during the runs: the 1-minute load average stayed within the cores (see the cost table)."


def report_head(title: str, rows: list[ModelRow], setting: ReportSetting, metrics: list[Metric],
                splits: list[str], differences: list[Difference] | None = None) -> str:
    """Title; the reading of the first metric on the primary split (test if there, else the first); data and
    classes; machine; load."""
    primary = "test" if "test" in splits else splits[0] if splits else "cv"
    return "\n\n".join([f"## {title}", reading(rows, primary, metrics[0], setting, differences),
                        data_section(setting, splits), machine_section(setting.machines), load_warning(rows)]) + "\n"


def results_sections(rows: list[ModelRow], setting: ReportSetting, metrics: list[Metric],
                     splits: list[str]) -> str:
    """A scores table per split, then the cost table (with the load each model's timings were taken under)."""
    parts = [f"### {', '.join(m.label for m in metrics)} per class, {setting.split_title(split)}\n\n"
             f"{scores_table(rows, split, metrics)}\n" for split in splits]
    parts.append(f"### Cost\n\n{cost_table(rows, setting.case_time)}\n")
    return "\n".join(parts)
