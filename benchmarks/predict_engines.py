"""`nnunet25d predict` on its two engines against nnU-Net 2d, at clinical size, in one run on one machine.

Per volume (the CT-like volumes and model folders of ``clinical_scale.py``: nnU-Net's 8-stage 2d CT plan at
512 x 512, features / 8 so that CPUs can run it, random weights), each command in its own process:

- nnU-Net 2d as users run it (`nnUNetv2_predict`) and nnU-Net 2d through the same engine as the slab model
  (`nnunet25d predict` on the 2d model folder: ONNX Runtime), so that a speed-up from the engine is never read
  as one from 2.5D;
- the slab model (`nnUNetTrainer25D`) through `nnunet25d predict --backend torch` (the engine before), through
  `nnunet25d predict` (ONNX Runtime: first run, which exports and caches the graph, then cached) and through
  `nnunet25d predict-onnx` (the deployment runtime).

Peak memory is the process tree's PSS sampled every 0.2 s; labels are compared voxel by voxel with the engine
before. Test-time mirroring on (what users run) unless ``--disable-tta``.

    python benchmarks/predict_engines.py --out benchmarks/results/predict_engines.md
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import psutil
import SimpleITK as sitk
from clinical_scale import DATASET, SLAB_TRAINER, STOCK_TRAINER, Case, measured_run, plans_for, write_model_folder, \
    write_volume
from onnx_deploy import environment

from nnunet_25d.report.load import OtherCpuSampler


def commands(images: Path, root: Path, mirroring: bool) -> dict[str, tuple[str, list[str]]]:
    """label -> (output folder name, command)."""
    def predict(program: list[str], trainer: str, out: str, *extra: str) -> tuple[str, list[str]]:
        return out, [*program, "-i", str(images), "-o", str(root / out), "-d", DATASET, "-c", "2d", "-tr", trainer,
                     "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_progress_bar",
                     *([] if mirroring else ["--disable_tta"]), *extra]

    ours = ["nnunet25d", "predict"]
    onnx_model = root / "onnx_model"
    return {
        "nnU-Net 2d, `nnUNetv2_predict`": predict(["nnUNetv2_predict"], STOCK_TRAINER, "2d_stock"),
        "nnU-Net 2d, `nnunet25d predict` (ONNX Runtime, exports)": predict(ours, STOCK_TRAINER, "2d_ort_first"),
        "nnU-Net 2d, `nnunet25d predict` (ONNX Runtime, cached)": predict(ours, STOCK_TRAINER, "2d_ort"),
        "slab, `nnunet25d predict --backend torch` (before)": predict(ours, SLAB_TRAINER, "slab_torch", "--backend",
                                                                      "torch"),
        "slab, `nnunet25d predict` (ONNX Runtime, exports)": predict(ours, SLAB_TRAINER, "slab_ort_first"),
        "slab, `nnunet25d predict` (ONNX Runtime, cached)": predict(ours, SLAB_TRAINER, "slab_ort"),
        "slab, `nnunet25d predict-onnx`": ("slab_onnx", [
            "nnunet25d", "predict-onnx", "-i", str(images), "-o", str(root / "slab_onnx"), "-m", str(onnx_model),
            "--disable_progress_bar", *([] if mirroring else ["--disable_tta"])]),
    }


def labels(folder: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "case_000.mha")))


AGREEMENT_WITH = {"2d_ort": "2d_stock", "slab_ort": "slab_torch", "slab_onnx": "slab_torch"}


def run_case(case: Case, work: Path, mirroring: bool) -> list[dict]:
    root = work / f"{case.name}_{'tta' if mirroring else 'notta'}"
    shutil.rmtree(root, ignore_errors=True)
    images = root / "imagesTs"
    write_volume(images, case)
    env = environment(root)
    plans = plans_for(case.in_plane, case.feature_divisor, case.depth)
    for trainer in (STOCK_TRAINER, SLAB_TRAINER):
        write_model_folder(root / "results", trainer, copy.deepcopy(plans), case.classes)
    measured_run(["nnunet25d", "export", "-d", DATASET, "-c", "2d", "-tr", SLAB_TRAINER, "-f", "0", "-o",
                  str(root / "onnx_model")], env, root / "export.log")
    rows = []
    for what, (out, command) in commands(images, root, mirroring).items():
        print(f"{root.name}: {what} ...", flush=True)
        row = {"case": case.name, "mirroring": mirroring, "what": what, "out": out,
               **measured_run(command, env, root / f"{out}.log")}
        if out in AGREEMENT_WITH and row["outcome"] == "ok":
            row["agreement"] = float(np.mean(labels(root / out) == labels(root / AGREEMENT_WITH[out])))
        print(f"   {row}", flush=True)
        rows.append(row)
    return rows


def write_table(rows: list[dict], out: Path, busy: float, peak: float) -> None:
    lines = ["# `nnunet25d predict`: ONNX Runtime against PyTorch, beside nnU-Net 2d (one run, this machine)", "",
             f"Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2 ** 30:.0f} GiB, no GPU; other work "
             f"used {busy:.2f} cores on average ({peak:.2f} at most) meanwhile; `python benchmarks/predict_engines.py`;"
             f" -npp 1 -nps 1; random weights, features / 8. \"vs 2d as users run it\": wall over `nnUNetv2_predict`'s;"
             f" \"vs 2d, same engine\": over nnU-Net 2d through `nnunet25d predict` (cached graph).", "",
             "| volume | mirroring | what | peak memory (PSS, GB) | wall (s) | vs 2d as users run it | "
             "vs 2d, same engine | labels equal to |", "|---|---|---|---|---|---|---|---|"]
    key = lambda r: (r["case"], r["mirroring"])  # noqa: E731
    stock = {key(r): r for r in rows if r["out"] == "2d_stock"}
    same_engine = {key(r): r for r in rows if r["out"] == "2d_ort"}
    for r in rows:
        ratio = lambda base: f"{r['wall_s'] / base[key(r)]['wall_s']:.2f}x" if key(r) in base else ""  # noqa: E731
        agreement = (f"{AGREEMENT_WITH[r['out']]}: {r['agreement']:.4%}" if "agreement" in r else "")
        lines.append(f"| {r['case']} | {'on' if r['mirroring'] else 'off'} | {r['what']} | {r['peak_gb']:.2f} | "
                     f"{r['wall_s']:.1f} | {ratio(stock)} | {ratio(same_engine)} | {agreement} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/nnunet25d_engines")
    parser.add_argument("--out", default="benchmarks/results/predict_engines.md")
    parser.add_argument("--cases", nargs="+", default=["80:3", "300:8", "300:14"], metavar="SLICES:CLASSES")
    parser.add_argument("--no-tta-cases", nargs="*", default=["80:3"], metavar="SLICES:CLASSES",
                        help="cases to run again with mirroring off")
    parser.add_argument("--smoke", action="store_true", help="one 64 x 64 x 6 volume: checks the script")
    args = parser.parse_args(argv)
    parse = lambda specs: [Case(*map(int, c.split(":"))) for c in specs]  # noqa: E731
    runs = [(case, True) for case in parse(args.cases)] + [(case, False) for case in parse(args.no_tta_cases)]
    if args.smoke:
        runs = [(Case(6, 3, 64), True)]
    with OtherCpuSampler() as other:
        rows = [row for case, mirroring in runs for row in run_case(case, Path(args.workdir), mirroring)]
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    write_table(rows, Path(args.out), other.mean, other.peak)


if __name__ == "__main__":
    main(sys.argv[1:])
