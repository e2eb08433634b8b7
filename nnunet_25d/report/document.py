"""The head of a Markdown report: title, the two-sentence reading, data and classes, machine, and whether other work
shared the CPUs while the timings were taken."""
from __future__ import annotations

from nnunet_25d.report.interpretation import reading
from nnunet_25d.report.load import CONTENTION_SHARE, WINDOW_SECONDS
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


def contention_warning(rows: list[ModelRow]) -> str:
    """A visible warning naming each model whose timings were taken while other work used the CPUs."""
    contended = [r for r in rows if r.contended]
    if contended:
        which = "; ".join(f"{r.label} (other processes used up to {r.other_cpu:.1f} of {r.cores} cores)"
                          for r in contended)
        return (f"> **⚠ Timings taken while other work ran:** {which}. Their s/epoch and s/case (and the ratios) "
                f"are slower than on an idle machine; rerun them alone for timings you can compare.")
    if not any(finite(r.other_cpu) for r in rows):
        return ("CPU used by other work during the runs: not recorded (trained outside `nnunet25d`, or by an older "
                "version).")
    most = max(r.other_cpu for r in rows if finite(r.other_cpu))
    return (f"CPU used by other work during the runs: at most {most:.2f} cores in any {int(WINDOW_SECONDS)}-s "
            f"window, within {CONTENTION_SHARE:.0%} of the cores (see the cost table): the timings are comparable.")


def report_head(title: str, rows: list[ModelRow], setting: ReportSetting, metrics: list[Metric],
                splits: list[str], differences: list[Difference] | None = None,
                primary: tuple[str, str] | None = None) -> str:
    """Title; the reading of the primary (split, metric key) where declared and present, else of the first metric on
    the test set if there, else on the first split; data and classes; machine; other work on the CPUs."""
    split = "test" if "test" in splits else splits[0] if splits else "cv"
    chosen = metrics[0]
    if primary is not None and primary[0] in splits:
        split = primary[0]
        chosen = next((m for m in metrics if m.key == primary[1]), chosen)
    return "\n\n".join([f"## {title}", reading(rows, split, chosen, setting, differences),
                        data_section(setting, splits), machine_section(setting.machines),
                        contention_warning(rows)]) + "\n"


def results_sections(rows: list[ModelRow], setting: ReportSetting, metrics: list[Metric],
                     splits: list[str]) -> str:
    """A scores table per split, then the cost table (with the other work beside each model's timings)."""
    parts = [f"### {', '.join(m.label for m in metrics)} per class, {setting.split_title(split)}\n\n"
             f"{scores_table(rows, split, metrics)}\n" for split in splits]
    parts.append(f"### Cost\n\n{cost_table(rows, setting.case_time)}\n")
    return "\n".join(parts)
