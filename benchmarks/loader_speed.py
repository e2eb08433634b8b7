"""Training's data side: batches per second of the default slab trainer's loader against nnU-Net 2d's, with nnU-Net's
real augmentation workers (``nnUNet_n_proc_DA`` as nnU-Net sets it for this machine, unless set), at a clinical
patch size (the 2d plan of a generated 512 x 512 dataset).

Each trainer is initialised as ``nnUNetv2_train`` does and its ``get_dataloaders()`` started; after a warm-up of
``--warmup`` batches, ``--batches`` batches are drawn with nothing else running (the network is not stepped: on a
GPU the step is short and the workers set the pace). Seconds per batch and the ratio to nnU-Net 2d's; each trainer's
batch holds the same number of supervised slices.

    python benchmarks/loader_speed.py --workdir /tmp/nnunet25d_loader --out benchmarks/results/loader_speed.md

Run it alone on the machine: it reports timings.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

DATASET_ID = 581


def prepare(workdir: Path, slices: int, cases: int) -> dict[str, str]:
    env = {**os.environ, "nnUNet_raw": str(workdir / "raw"), "nnUNet_preprocessed": str(workdir / "preprocessed"),
           "nnUNet_results": str(workdir / "results"), "nnUNet_def_n_proc": "1"}
    env.pop("nnUNet_n_proc_DA", None)  # never during planning
    name = next((p.name for p in (workdir / "preprocessed").glob(f"Dataset{DATASET_ID}_*")), None)
    if name is None:
        subprocess.run(["nnunet25d", "make-dataset", "--raw", env["nnUNet_raw"], "-d", str(DATASET_ID), "--n-train",
                        str(cases), "--n-test", "0", "--shape", str(slices), "512", "512"], env=env, check=True)
        subprocess.run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
    return env


def measure(trainer_name: str, batches: int, warmup: int) -> dict:
    """In a fresh process per trainer (its workers are the only ones running)."""
    code = f"""
import json, os, time, torch
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from pathlib import Path
dataset = maybe_convert_to_dataset_name({DATASET_ID})
folder = Path(os.environ["nnUNet_preprocessed"]) / dataset
plans = json.loads((folder / "nnUNetPlans.json").read_text())
plans["continue_training"] = False
trainer = recursive_find_trainer_class_by_name("{trainer_name}")(
    plans, "2d", 0, json.loads((folder / "dataset.json").read_text()), torch.device("cpu"))
trainer.initialize()
loader, _ = trainer.get_dataloaders()
for _ in range({warmup}):
    next(loader)
start = time.perf_counter()
for _ in range({batches}):
    batch = next(loader)
seconds = (time.perf_counter() - start) / {batches}
target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
print("RESULT " + json.dumps({{"seconds_per_batch": seconds, "workers": get_allowed_n_proc_DA(),
                              "data": list(batch["data"].shape), "target": list(target.shape)}}), flush=True)
"""
    from nnunet_25d import TRAINER_FOLDER

    env = {**os.environ, "nnUNet_extTrainer": str(TRAINER_FOLDER)}
    # the augmentation workers outlive the measuring process and hold its pipe: end the whole group at the result
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    line = next((line for line in process.stdout if line.startswith("RESULT ")), None)
    os.killpg(process.pid, signal.SIGKILL)
    if line is None:
        raise RuntimeError(f"{trainer_name}: {process.stderr.read()[-2000:]}")
    return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/nnunet25d_loader")
    parser.add_argument("--out", default="benchmarks/results/loader_speed.md")
    parser.add_argument("--trainers", nargs="+", default=["nnUNetTrainer", "nnUNetTrainer25D"])
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--cases", type=int, default=6)  # nnU-Net splits into five folds
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    os.environ.update(prepare(workdir, args.slices, args.cases))
    rows = {trainer: measure(trainer, args.batches, args.warmup) for trainer in args.trainers}
    base = rows[args.trainers[0]]["seconds_per_batch"]
    lines = [f"# Loader speed: batches per second with nnU-Net's augmentation workers (one run, this machine)", "",
             f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2 ** 30:.0f} GiB; "
             f"`python benchmarks/loader_speed.py --slices {args.slices} --cases {args.cases} --batches "
             f"{args.batches}`; generated dataset, 512 x 512 in-plane, 2d plan.", "",
             "| trainer | workers (`nnUNet_n_proc_DA`) | batch data | batch target | s/batch | batches/s | vs "
             f"{args.trainers[0]} |", "|---|---|---|---|---|---|---|"]
    for trainer, row in rows.items():
        lines.append(f"| {trainer} | {row['workers']} | {row['data']} | {row['target']} | "
                     f"{row['seconds_per_batch']:.3f} | {1 / row['seconds_per_batch']:.2f} | "
                     f"{row['seconds_per_batch'] / base:.2f}x |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
