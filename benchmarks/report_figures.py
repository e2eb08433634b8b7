"""What the segmentation figures cost the demo's report step: the time of ``write_report`` (report.md, CSV, JSON,
overview PNG and the figures) with ``--figures none``, ``key`` and ``all``, and the size of the report folder.

Runs ``nnunet25d demo`` into ``--workdir`` first if that holds no finished demo (about 10 min at 10 x 50 on two idle
cores), then rebuilds the report from the demo's own files ``--repeats`` times per setting into
``<workdir>/report_timing_<setting>``: no training or prediction is repeated. Run it alone on the machine.

    python benchmarks/report_figures.py --workdir /tmp/demo_figures --repeats 5
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from nnunet_25d.benchmark.comparison import (DatasetPaths, ModelResult, ModelSpec, report_setting, training_curves,
                                             write_report)
from nnunet_25d.report.segmentations import MODES


def finished_demo(workdir: Path) -> bool:
    return (workdir / "report" / "results.json").is_file() and (workdir / "predictions").is_dir()


def load_demo(workdir: Path) -> tuple[list[ModelResult], dict[str, dict[str, list[float]]], DatasetPaths]:
    """The demo's results (its results.json) and training curves (its checkpoints), as its report step had them."""
    results = [ModelResult(**r) for r in json.loads((workdir / "report" / "results.json").read_text())]
    curves = {}
    for r in results:
        checkpoint = Path(r.model_folder) / f"fold_{r.fold}" / "checkpoint_final.pth"
        curves[r.label] = training_curves(torch.load(checkpoint, map_location="cpu", weights_only=False))
    raw = Path(results[0].raw_dataset)
    paths = DatasetPaths(raw.name, raw.parent, workdir / "nnUNet_preprocessed", workdir / "nnUNet_results")
    return results, curves, paths


def folder_size(folder: Path) -> tuple[int, int, int]:
    """(bytes of every file, bytes of the segmentation figures, number of segmentation figures)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    figures = [p for p in files if p.name.startswith("segmentation_")]
    return sum(p.stat().st_size for p in files), sum(p.stat().st_size for p in figures), len(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--schedule", default="10x50", help="the demo's schedule where it has to run first")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    if not finished_demo(workdir):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nnunet_25d.cli", "demo", "--workdir", str(workdir), "--schedule",
                        args.schedule, "-device", "cpu"], check=True)
        print(f"demo: {time.perf_counter() - started:.0f} s", flush=True)
    results, curves, paths = load_demo(workdir)
    specs = [ModelSpec(r.label, r.trainer, r.configuration) for r in results]
    setting = report_setting(paths, specs, results[0].fold, "nnU-Net 2d vs 2.5D")
    print("| --figures | report step (s), median of repeats [min, max] | figures | figures (KiB) | "
          "report folder (KiB) |\n|---|---|---|---|---|")
    seconds = {}
    for mode in MODES:
        out = workdir / f"report_timing_{mode}"
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            write_report(results, curves, out, setting, figures=mode, predictions=workdir / "predictions")
            times.append(time.perf_counter() - started)
        seconds[mode] = statistics.median(times)
        total, figures, count = folder_size(out)
        print(f"| {mode} | {seconds[mode]:.2f} [{min(times):.2f}, {max(times):.2f}] | {count} | "
              f"{figures / 1024:.0f} | {total / 1024:.0f} |", flush=True)
    for mode in ("key", "all"):
        print(f"figures {mode}: +{seconds[mode] - seconds['none']:.2f} s over none")


if __name__ == "__main__":
    main()
