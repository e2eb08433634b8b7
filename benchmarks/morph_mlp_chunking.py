"""MorphMLP-N at a given in-plane size: Dice on the synthetic test set, the chunk lengths its plans chose, s/epoch.

Issue #12's before/after of the chunking: run it once with the old code on the path (e.g. a git worktree of
the previous commit: ``PYTHONPATH=<worktree> nnUNet_extTrainer=<worktree>/nnunet_25d/trainers python ...``)
and once with this checkout, same dataset seed, same schedule.

    python benchmarks/morph_mlp_chunking.py --workdir bench_chunk_192 --shape 20 192 160 --schedule 5x20
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from nnunet_25d.benchmark.runner import trainer_lookup_path
from nnunet_25d.datasets.synthetic import LABELS, SyntheticSpec, write_dataset

DATASET_ID = 612


def run(command: list[str], log: Path) -> None:
    print("$", " ".join(command), flush=True)
    with log.open("a") as out:
        subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT)


def test_dice(summary: Path) -> dict[str, float]:
    means = json.loads(summary.read_text())["mean"]
    return {name: round(means[str(value)]["Dice"], 3) for name, value in LABELS.items() if value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--shape", type=int, nargs=3, default=(20, 64, 64), metavar=("Z", "Y", "X"))
    parser.add_argument("--schedule", default="10x50", help="EPOCHSxITERATIONS")
    parser.add_argument("--trainer", default="nnUNetTrainer25DMorphMLP_N")
    parser.add_argument("--fold", type=int, default=0, help="a second fold shows how much one run varies")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(nnUNet_raw=str(work / "raw"), nnUNet_preprocessed=str(work / "preprocessed"),
                      nnUNet_results=str(work / "results"), nnUNet_def_n_proc="1")
    os.environ.setdefault("nnUNet_extTrainer", trainer_lookup_path(None))  # "before" runs set the old folder
    log = work / "log.txt"
    epochs, iterations = args.schedule.split("x")
    trainer = f"{args.trainer}_{epochs}epochs_{iterations}iters"
    raw = work / "raw" / f"Dataset{DATASET_ID}_Chunking"
    if not raw.exists():
        write_dataset(work / "raw", DATASET_ID, "Chunking", spec=SyntheticSpec(shape=tuple(args.shape)))
        run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1"], log)
    started = time.perf_counter()
    run(["nnUNetv2_train", str(DATASET_ID), "2d", str(args.fold), "-tr", trainer, "-device", "cpu"], log)
    train_seconds = time.perf_counter() - started
    model = work / "results" / raw.name / f"{trainer}__nnUNetPlans__2d"
    prediction = work / f"prediction_{trainer}_fold{args.fold}"
    run(["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(prediction), "-d", str(DATASET_ID), "-c", "2d",
         "-f", str(args.fold), "-tr", trainer, "-device", "cpu"], log)
    run(["nnUNetv2_evaluate_folder", str(raw / "labelsTs"), str(prediction), "-djfile", str(model / "dataset.json"),
         "-pfile", str(model / "plans.json")], log)
    arch = json.loads((model / "plans.json").read_text())["configurations"]["2d"]["architecture"]["arch_kwargs"]
    checkpoint = torch.load(model / f"fold_{args.fold}" / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
    logging = checkpoint["logging"]
    epoch_seconds = [end - start for start, end in zip(logging["epoch_start_timestamps"],
                                                       logging["epoch_end_timestamps"])]
    record = {
        "trainer": trainer, "fold": args.fold, "shape": list(args.shape),
        "python_path": os.environ.get("PYTHONPATH", ""),
        "chunking": {key: arch[key] for key in arch if "chunk" in key},
        "test_dice": test_dice(prediction / "summary.json"),
        "seconds_per_epoch": round(sum(epoch_seconds) / len(epoch_seconds), 2),
        "train_wall_seconds": round(train_seconds, 1),
        "load_average_1min_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
    }
    print(json.dumps(record, indent=1))
    with (work / "results.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    sys.exit(main())
