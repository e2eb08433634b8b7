"""The parts of a Markdown report that reads top-down: the verdict (title, the two-sentence reading, the warning where
other work shared the CPUs), the key table, the other tables, and a Methods section at the end (data and classes,
machine, the other work during the runs, and whatever else the caller defines once there)."""
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


def contention_flag(rows: list[ModelRow]) -> str:
    """A visible warning naming each model whose timings were taken while other work used the CPUs; "" if none."""
    contended = [r for r in rows if r.contended]
    if not contended:
        return ""
    which = "; ".join(f"{r.label} (other processes used up to {r.other_cpu:.1f} of {r.cores} cores)"
                      for r in contended)
    return (f"> **⚠ Timings taken while other work ran:** {which}. Their s/epoch and s/case (and the ratios) "
            f"are slower than on an idle machine; rerun them alone for timings you can compare.")


def load_note(rows: list[ModelRow]) -> str:
    """Where no timing is flagged: how much other work ran (or that it was not recorded); "" where one is."""
    if any(r.contended for r in rows):
        return ""
    if not any(finite(r.other_cpu) for r in rows):
        return ("CPU used by other work during the runs: not recorded (trained outside `nnunet25d`, or by an older "
                "version).")
    most = max(r.other_cpu for r in rows if finite(r.other_cpu))
    return (f"CPU used by other work during the runs: at most {most:.2f} cores in any {int(WINDOW_SECONDS)}-s "
            f"window, within {CONTENTION_SHARE:.0%} of the cores (see the cost table): the timings are comparable.")


def contention_warning(rows: list[ModelRow]) -> str:
    """The flag where other work shared the CPUs, the load note otherwise."""
    return contention_flag(rows) or load_note(rows)


def reading_choice(metrics: list[Metric], splits: list[str], primary: tuple[str, str] | None = None
                   ) -> tuple[str, Metric]:
    """(split, metric) the report opens with: the primary (split, metric key) where declared and present, else the
    first metric on the test set if there, else on the first split."""
    split = "test" if "test" in splits else splits[0] if splits else "cv"
    chosen = metrics[0]
    if primary is not None and primary[0] in splits:
        split = primary[0]
        chosen = next((m for m in metrics if m.key == primary[1]), chosen)
    return split, chosen


def verdict(title: str, rows: list[ModelRow], setting: ReportSetting, metrics: list[Metric], splits: list[str],
            differences: list[Difference] | None = None, primary: tuple[str, str] | None = None) -> str:
    """Title, the two-sentence reading (one line) and, where other work shared the CPUs, the warning (one more)."""
    split, chosen = reading_choice(metrics, splits, primary)
    flag = contention_flag(rows)
    return "\n\n".join([f"## {title}", reading(rows, split, chosen, setting, differences)] + ([flag] if flag else [])) \
        + "\n"


def key_table(rows: list[ModelRow], setting: ReportSetting, metrics: list[Metric], split: str) -> str:
    """The scores table of the split the report opens with."""
    return f"### {', '.join(m.label for m in metrics)} per class, {setting.split_title(split)}\n\n" \
           f"{scores_table(rows, split, metrics)}\n"


def methods_section(rows: list[ModelRow], setting: ReportSetting, splits: list[str], extra: list[str] = ()) -> str:
    """The report's end: data and classes, machine, the other work during the runs (where not flagged at the top),
    then ``extra`` paragraphs (statistics, power, self-configuration, figures), each written once."""
    parts = [data_section(setting, splits), machine_section(setting.machines), load_note(rows), *extra]
    return "\n\n".join(["### Methods"] + [p for p in parts if p]) + "\n"


def results_sections(rows: list[ModelRow], setting: ReportSetting, metrics: list[Metric],
                     splits: list[str], skip: str | None = None) -> str:
    """A scores table per split (but ``skip``, the key table's), then the cost table (with the other work beside
    each model's timings)."""
    parts = [key_table(rows, setting, metrics, split) for split in splits if split != skip]
    parts.append(f"### Cost\n\n{cost_table(rows, setting.case_time)}\n")
    return "\n".join(parts)
