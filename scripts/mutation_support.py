"""Helpers of scripts/mutation.sh: the work folder's mutmut configuration, and the report of a finished run.

    python scripts/mutation_support.py config [--tests=ARGS] WORK_DIR [PATTERN ...]
    python scripts/mutation_support.py report WORK_DIR REPORT_FILE SECONDS
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import subprocess
import sys
import tomllib
from collections import Counter
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KILLED = ("killed", "timeout", "caught by type check")  # the tests (or their time limit) noticed the mutant
NOT_RUN = ("skipped", "not checked", "check was interrupted by user")
NOTES_HEADING = "## Notes"  # a report's hand-kept section from this heading on survives a rerun


def default_patterns() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]


def toml_line(key: str, value: object) -> str:
    """Strings, numbers, booleans and lists of them are written the same in JSON and TOML."""
    return f"{key} = {json.dumps(value)}"


def write_config(work: Path, patterns: list[str], tests: str | None) -> None:
    """pyproject.toml of the work folder: the repository's mutmut and pytest settings, ``only_mutate`` = the
    modules of this run, the test selection replaced by ``tests`` (pytest arguments) when given."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]
    mutmut = {**tool["mutmut"], "only_mutate": patterns or default_patterns()}
    if tests:
        mutmut["pytest_add_cli_args_test_selection"] = shlex.split(tests)
    sections = {"tool.mutmut": mutmut, "tool.pytest.ini_options": tool["pytest"]["ini_options"]}
    text = "\n\n".join(f"[{name}]\n" + "\n".join(toml_line(k, v) for k, v in table.items())
                       for name, table in sections.items())
    (work / "pyproject.toml").write_text(text + "\n")


def mutation_results(work: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(mutant name -> mutmut's status, survivor name -> its changed lines), read in-process with mutmut's own
    (3.8) functions: one ``mutmut show`` per survivor would take a second each."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    status_of, changes = {}, {}
    with contextlib.chdir(work):
        for path in walk_mutatable_files():
            data = SourceFileMutationData(path=path)
            data.load()
            for name, exit_code in data.exit_code_by_key.items():
                status_of[name] = status_by_exit_code[exit_code]
                if status_of[name] == "survived":
                    diff = get_diff_for_mutant(name, path=path).splitlines()
                    changes[name] = "\n".join(line for line in diff
                                              if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    return status_of, changes


def function_of(mutant: str) -> str:
    """``nnunet_25d.geometry.slab.xǁSlabBatchǁpatch_depth__mutmut_3`` -> ``slab.SlabBatch.patch_depth``."""
    module, mangled = mutant.rsplit(".", 1)
    name = mangled.rsplit("__mutmut_", 1)[0]
    name = name[2:].replace("ǁ", ".") if name.startswith("xǁ") else name.removeprefix("x_")
    return f"{module.removeprefix('nnunet_25d.')}.{name}"


def module_of(mutant: str) -> str:
    return mutant.rsplit(".", 1)[0]


def kill_rate(counts: Counter) -> tuple[int, int]:
    """(killed, mutants the tests ran against or could not reach); 'no tests' counts as not killed."""
    tested = sum(n for status, n in counts.items() if status not in NOT_RUN)
    return sum(counts[status] for status in KILLED), tested


def rate_text(counts: Counter) -> str:
    killed, tested = kill_rate(counts)
    return f"{killed}/{tested} = {100 * killed / max(tested, 1):.1f} %"


def summary_table(by_module: dict[str, Counter]) -> list[str]:
    rows = ["| module | mutants | killed | survived | no tests | other | kill rate |", "|---|---|---|---|---|---|---|"]
    for module, counts in sorted(by_module.items()):
        killed, _ = kill_rate(counts)
        other = sum(counts.values()) - killed - counts["survived"] - counts["no tests"]
        rows.append(f"| `{module}` | {sum(counts.values())} | {killed} | {counts['survived']} | {counts['no tests']} "
                    f"| {other} | {rate_text(counts)} |")
    return rows


def kept_notes(report: Path) -> str:
    if not report.is_file():
        return f"{NOTES_HEADING}\n\nWhy each survivor left is equivalent (kept by hand; a rerun keeps this section).\n"
    text = report.read_text()
    return text[text.index(NOTES_HEADING):] if NOTES_HEADING in text else ""


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()


def write_report(work: Path, report: Path, seconds: float, workers: int = 1) -> None:
    """Print the kill rate and the survivors, and write them to ``report`` (keeping its notes section)."""
    status_of, changes = mutation_results(work)
    config = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    by_module: dict[str, Counter] = {}
    for name, status in status_of.items():
        by_module.setdefault(module_of(name), Counter())[status] += 1
    total = sum(by_module.values(), Counter())
    survivors = [name for name, status in sorted(status_of.items()) if status not in KILLED + NOT_RUN + ("no tests",)]
    unreached = Counter(function_of(name) for name, status in status_of.items() if status == "no tests")
    lines = [
        f"# Mutation testing: {report.stem.removeprefix('mutation_')}", "",
        f"`scripts/mutation.sh` (mutmut, {workers} worker{'s' if workers > 1 else ''}) on "
        f"{datetime.now():%Y-%m-%d %H:%M}, commit {git_commit()} "
        f"(plus uncommitted changes, if any), {seconds / 60:.1f} min.", "",
        f"- modules: {', '.join(f'`{p}`' for p in config['only_mutate'])}",
        f"- tests: `pytest {' '.join(config['pytest_add_cli_args_test_selection'] + config['pytest_add_cli_args'])}`",
        f"- **kill rate {rate_text(total)}** (killed or timed out / mutants; 'no tests': no selected test reaches "
        f"the mutated function, counted as not killed)", "",
        *summary_table(by_module), "",
        f"## Survivors ({len(survivors)})", "",
    ]
    for name in survivors:
        lines += [f"- `{name}` ({status_of[name]})", "", "```diff", changes.get(name, ""), "```", ""]
    lines += [f"## Functions no selected test reaches ({sum(unreached.values())} mutants)", ""]
    lines += [f"- `{function}`: {count}" for function, count in sorted(unreached.items())] + [""]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n" + kept_notes(report))
    print(f"kill rate {rate_text(total)}; {len(survivors)} survivors, {sum(unreached.values())} mutants in "
          f"{len(unreached)} functions no selected test reaches")
    for name in survivors:
        first_change = " / ".join(changes.get(name, "").splitlines()[:2])
        print(f"  {name} ({status_of[name]}): {first_change[:150]}")
    print(f"report: {report.relative_to(REPO) if report.is_relative_to(REPO) else report}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config")
    config.add_argument("work", type=Path)
    config.add_argument("--tests")
    config.add_argument("patterns", nargs="*")
    report = commands.add_parser("report")
    report.add_argument("work", type=Path)
    report.add_argument("report", type=Path)
    report.add_argument("seconds", type=float)
    report.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "config":
        write_config(args.work, args.patterns, args.tests)
    else:
        write_report(args.work, args.report, args.seconds, args.workers)


if __name__ == "__main__":
    main(sys.argv[1:])
