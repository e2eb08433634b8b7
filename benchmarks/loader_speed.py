"""Training's data side: seconds per batch of the slab trainers' loaders against nnU-Net 2d's, with nnU-Net's real
augmentation workers (``nnUNet_n_proc_DA`` as nnU-Net sets it for this machine, unless set), at a clinical patch
size (the 2d plan of a generated 512 x 512 dataset).

Each trainer is initialised as ``nnUNetv2_train`` does, in a fresh process, and its ``get_dataloaders()`` started;
after ``--warmup`` batches (enough to drain the augmenter's prefetch queues), ``--batches`` batches are drawn with
nothing else running (the network is not stepped: on a GPU the step is short and the workers set the pace). Each
trainer's batch holds the same number of supervised slices. A second table says where the time goes: the same
loader without workers (``nnUNet_n_proc_DA=0``), each pipeline step timed.

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
from collections import defaultdict
from pathlib import Path

import psutil

DATASET_ID = 581
TRAINERS = ["nnUNetTrainer", "nnUNetTrainer25D", "nnUNetTrainer25D_DeepPatches"]


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


def initialised_trainer(name: str):
    import torch
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    folder = Path(os.environ["nnUNet_preprocessed"]) / maybe_convert_to_dataset_name(DATASET_ID)
    plans = json.loads((folder / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    trainer = recursive_find_trainer_class_by_name(name)(
        plans, "2d", 0, json.loads((folder / "dataset.json").read_text()), torch.device("cpu"))
    trainer.initialize()
    return trainer


def shapes(batch: dict) -> dict:
    target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
    return {"data": list(batch["data"].shape), "target": list(target.shape)}


def with_workers(name: str, batches: int, warmup: int) -> dict:
    """Seconds per batch drawn from nnU-Net's augmenter and its worker processes."""
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    loader, _ = initialised_trainer(name).get_dataloaders()
    for _ in range(warmup):
        next(loader)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(loader)
    return {"seconds_per_batch": (time.perf_counter() - start) / batches, "workers": get_allowed_n_proc_DA(),
            **shapes(batch)}


def step_by_step(name: str, batches: int, warmup: int) -> dict:
    """Seconds per batch of each pipeline step, in this process (no workers): loading and cropping the patches
    (nnU-Net's loader) and each augmentation step."""
    os.environ["nnUNet_n_proc_DA"] = "0"
    loader, _ = initialised_trainer(name).get_dataloaders()
    generator = loader.data_loader  # nnU-Net's data loader, with the augmentation inside
    seconds: dict[str, float] = defaultdict(float)
    for step in generator.transforms.transforms:
        inner = getattr(step, "transform", step)

        def timed(*args, _apply=step.apply, _name=type(inner).__name__, **kwargs):
            start = time.perf_counter()
            result = _apply(*args, **kwargs)
            seconds[_name] += time.perf_counter() - start
            return result
        step.apply = timed
    for _ in range(warmup):
        generator.generate_train_batch()
    seconds.clear()
    start = time.perf_counter()
    for _ in range(batches):
        batch = generator.generate_train_batch()
    total = time.perf_counter() - start
    steps = {step: value / batches for step, value in seconds.items()}
    steps["loading, cropping, batching"] = (total - sum(seconds.values())) / batches
    return {"seconds_per_batch": total / batches, "steps": steps, **shapes(batch)}


def measure(trainer: str, mode: str, batches: int, warmup: int) -> dict:
    """One trainer's figure, measured by this script in a fresh process (its workers are the only ones running)."""
    from nnunet_25d import TRAINER_FOLDER

    env = {**os.environ, "nnUNet_extTrainer": str(TRAINER_FOLDER)}
    command = [sys.executable, __file__, "--child", trainer, mode, str(batches), str(warmup)]
    # the augmentation workers outlive the measuring process and hold its pipe: end the whole group at the result
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    line = next((line for line in process.stdout if line.startswith("RESULT ")), None)
    os.killpg(process.pid, signal.SIGKILL)
    if line is None:
        raise RuntimeError(f"{trainer}: {process.stderr.read()[-2000:]}")
    return json.loads(line[len("RESULT "):])


def child(trainer: str, mode: str, batches: str, warmup: str) -> None:
    measured = (with_workers if mode == "workers" else step_by_step)(trainer, int(batches), int(warmup))
    print("RESULT " + json.dumps(measured), flush=True)


def report(rows: dict, steps: dict, args: argparse.Namespace) -> str:
    base = args.trainers[0]
    lines = ["# Loader speed: seconds per batch with nnU-Net's augmentation workers (one run, this machine)", "",
             f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2 ** 30:.0f} GiB; `python "
             f"benchmarks/loader_speed.py --slices {args.slices} --cases {args.cases} --batches {args.batches} "
             f"--warmup {args.warmup}`; generated dataset, 512 x 512 in-plane, 2d plan, fold 0.", "",
             f"| trainer | workers (`nnUNet_n_proc_DA`) | batch data | batch target | s/batch | batches/s | vs {base} |",
             "|---|---|---|---|---|---|---|"]
    for trainer, row in rows.items():
        lines.append(f"| {trainer} | {row['workers']} | {row['data']} | {row['target']} | "
                     f"{row['seconds_per_batch']:.3f} | {1 / row['seconds_per_batch']:.2f} | "
                     f"{row['seconds_per_batch'] / rows[base]['seconds_per_batch']:.2f}x |")
    names = list(dict.fromkeys(name for measured in steps.values() for name in measured["steps"]))
    names.sort(key=lambda name: -steps[args.trainers[-1]]["steps"].get(name, 0))
    lines += ["", f"## Where the time goes: one process, no workers, {args.step_batches} batches, s/batch", "",
              "| step | " + " | ".join(steps) + " |", "|---|" + "---|" * len(steps)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{measured['steps'].get(name, 0):.4f}"
                                                 for measured in steps.values()) + " |")
    lines.append("| **all** | " + " | ".join(f"**{measured['seconds_per_batch']:.3f}**"
                                            for measured in steps.values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/nnunet25d_loader")
    parser.add_argument("--out", default="benchmarks/results/loader_speed.md")
    parser.add_argument("--trainers", nargs="+", default=TRAINERS)
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--cases", type=int, default=6)  # nnU-Net splits into five folds
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--step-batches", type=int, default=60)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)
    os.environ.update(prepare(Path(args.workdir), args.slices, args.cases))
    rows = {trainer: measure(trainer, "workers", args.batches, args.warmup) for trainer in args.trainers}
    steps = {trainer: measure(trainer, "steps", args.step_batches, 3) for trainer in args.trainers}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report(rows, steps, args))
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
