"""Issue #24's numbers: `nnunet25d predict-onnx` (ONNX Runtime, CPU provider) against `nnunet25d predict` and
nnU-Net 2d's `nnUNetv2_predict`, at clinical size, in one run on one machine; export time and ONNX file sizes.

The model folders and CT-like volumes are those of ``clinical_scale.py`` (nnU-Net's 8-stage 2d CT plan at 512 x 512,
features / 8 so that CPUs can run it, random weights: time and memory do not depend on them); ``--full-size`` adds
the full-size networks at 256 x 256 x 80. Each command runs in its own process; peak memory is the process tree's
PSS sampled every 0.2 s. Test-time mirroring is off in every run. The segmentations of `predict-onnx` and
`nnunet25d predict` are compared voxel by voxel.

    python benchmarks/onnx_deploy.py --workdir /tmp/nnunet25d_onnx --out benchmarks/results/onnx_deploy.md
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import psutil
import SimpleITK as sitk
from clinical_scale import (DATASET, SLAB_TRAINER, STOCK_TRAINER, Case, measured_run, plans_for,
                            predict_commands, write_model_folder, write_volume)

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.report.load import OtherCpuSampler


def environment(root: Path) -> dict:
    return {**os.environ, "nnUNet_results": str(root / "results"), "nnUNet_raw": str(root / "raw"),
            "nnUNet_preprocessed": str(root / "preprocessed"), "nnUNet_extTrainer": str(TRAINER_FOLDER),
            "nnUNet_def_n_proc": "1"}


def run_case(case: Case, work: Path) -> list[dict]:
    root = work / case.name
    images, results = root / "imagesTs", root / "results"
    write_volume(images, case)
    env = environment(root)
    plans = plans_for(case.in_plane, case.feature_divisor, case.depth)
    for trainer in (STOCK_TRAINER, SLAB_TRAINER):
        write_model_folder(results, trainer, copy.deepcopy(plans), case.classes)
    model = root / "onnx_model"
    rows = [{"case": case.name, "what": "`nnunet25d export`", **measured_run(
        ["nnunet25d", "export", "-d", DATASET, "-c", "2d", "-tr", SLAB_TRAINER, "-f", "0", "-o", str(model)], env,
        root / "export.log")}]
    rows[-1]["size_mb"] = sum(p.stat().st_size for p in model.glob("*.onnx")) / 2 ** 20
    runs = {"nnU-Net 2d `nnUNetv2_predict`": predict_commands(images, root / STOCK_TRAINER, STOCK_TRAINER)[
                "nnUNetv2_predict"],
            "slab `nnunet25d predict`": predict_commands(images, root / SLAB_TRAINER, SLAB_TRAINER)[
                "nnunet25d predict"],
            "slab `nnunet25d predict-onnx`": ["nnunet25d", "predict-onnx", "-i", str(images), "-o",
                                              str(root / "onnx"), "-m", str(model), "--disable_tta",
                                              "--disable_progress_bar"]}
    for what, command in runs.items():
        print(f"{case.name}: {what} ...", flush=True)
        rows.append({"case": case.name, "what": what,
                     **measured_run(command, env, root / f"{what.split('`')[1].replace(' ', '_')}.log")})
        print(f"   {rows[-1]}", flush=True)
    torch_labels = sitk.GetArrayFromImage(sitk.ReadImage(str(root / SLAB_TRAINER / "slab" / "case_000.mha")))
    onnx_labels = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "onnx" / "case_000.mha")))
    rows[-1]["agreement"] = float(np.mean(torch_labels == onnx_labels))
    return rows


def write_table(rows: list[dict], out: Path, busy: float, peak: float) -> None:
    lines = ["# Deployment: ONNX Runtime against PyTorch and nnU-Net 2d (one run, this machine)", "",
             f"Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2 ** 30:.0f} GiB, no GPU; other "
             f"work used {busy:.2f} cores on average ({peak:.2f} at most) meanwhile; `python benchmarks/onnx_deploy.py`; test-time "
             f"mirroring off; -npp 1 -nps 1; ONNX Runtime's CPUExecutionProvider.", "",
             "| volume | what | peak memory (PSS, GB) | wall (s) | vs nnU-Net 2d | outcome | notes |",
             "|---|---|---|---|---|---|---|"]
    baselines = {r["case"]: r["wall_s"] for r in rows if r["what"].startswith("nnU-Net 2d")}
    for r in rows:
        notes = []
        if "size_mb" in r:
            notes.append(f"ONNX file {r['size_mb']:.1f} MiB")
        if "agreement" in r:
            notes.append(f"labels equal to `nnunet25d predict` on {r['agreement']:.4%} of voxels")
        ratio = "" if r["what"].startswith("`nnunet25d export`") else f"{r['wall_s'] / baselines[r['case']]:.2f}x"
        lines.append(f"| {r['case']} | {r['what']} | {r['peak_gb']:.2f} | {r['wall_s']:.1f} | {ratio} | "
                     f"{r['outcome']} | {'; '.join(notes)} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/nnunet25d_onnx")
    parser.add_argument("--out", default="benchmarks/results/onnx_deploy.md")
    parser.add_argument("--cases", nargs="+", default=["80:3", "300:8"], metavar="SLICES:CLASSES")
    parser.add_argument("--full-size", action="store_true", help="add the full-size networks at 256 x 256 x 80")
    parser.add_argument("--smoke", action="store_true", help="one 64 x 64 x 6 volume: checks the script")
    args = parser.parse_args(argv)
    cases = [Case(*map(int, c.split(":"))) for c in args.cases] if not args.smoke else [Case(6, 3, 64)]
    if args.full_size:
        cases.append(Case(80, 3, in_plane=256, feature_divisor=1))
    with OtherCpuSampler() as other:
        rows = [row for case in cases for row in run_case(case, Path(args.workdir))]
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    write_table(rows, Path(args.out), other.mean, other.peak)


if __name__ == "__main__":
    main(sys.argv[1:])
