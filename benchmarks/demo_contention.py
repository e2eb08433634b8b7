"""The demo's timings alone and beside a busy process (issue 14): does the report flag the contended run, and only
that one?

Runs ``nnunet25d demo`` in ``WORKDIR/alone`` on an idle machine, then in ``WORKDIR/busy`` while one Python busy
loop (started by this script, so outside the demo's process tree) takes a core. Prints per run and model: s/epoch,
s/case, the cores other work used (highest 30-s mean) and whether the report flagged it.

    python benchmarks/demo_contention.py --workdir bench_contention [--schedule 10x50] [--busy-schedule 5x20]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from nnunet_25d.report.load import contended


def run_demo(workdir: Path, schedule: str) -> float:
    started = time.perf_counter()
    subprocess.run(["nnunet25d", "demo", "--workdir", str(workdir), "--schedule", schedule], check=True)
    return time.perf_counter() - started


def summary(workdir: Path, label: str, wall: float) -> list[str]:
    lines = []
    for result in json.loads((workdir / "report" / "results.json").read_text()):
        flagged = contended(result["other_cpu"], result["cores"])
        lines.append(f"| {label} | {result['label']} | {result['seconds_per_epoch']:.2f} | "
                     f"{result['seconds_per_case']:.2f} | {result['other_cpu']:.2f} of {result['cores']} | "
                     f"{'⚠ flagged' if flagged else 'clean'} | {wall / 60:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--schedule", default="10x50", help="the run alone (the README's demo)")
    parser.add_argument("--busy-schedule", default="5x20", help="the run beside the busy process")
    args = parser.parse_args()
    rows = ["| run | model | s/epoch | s/case | cores used by other work | report | demo wall (min) |",
            "|---|---|---|---|---|---|---|"]
    wall = run_demo(args.workdir / "alone", args.schedule)
    rows += summary(args.workdir / "alone", f"alone, {args.schedule}", wall)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        wall = run_demo(args.workdir / "busy", args.busy_schedule)
    finally:
        busy.kill()
    rows += summary(args.workdir / "busy", f"beside a busy loop, {args.busy_schedule}", wall)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
