"""Start-up cost of the plugin's trainer lookup: wall time from ``nnUNetv2_train … -tr TRAINER`` to its first epoch,
nnU-Net's own ``nnUNetTrainer`` against the plugin's ``nnUNetTrainer25D``, and how many trainer classes the lookup
built. With ``--old-tree`` (a checkout of an earlier version) the same is measured for that version in the same run.

    python benchmarks/trainer_lookup.py --work /tmp/lookup --old-tree /tmp/old --repeats 3

Each run is killed once it prints "Epoch 0"; take the numbers only with nothing else running on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Runs nnUNetv2_train's entry point in a fresh interpreter with the package from TREE first on the path; counts the
# trainer classes the plugin's registry module made (variants; the hand-written ones are defined once either way) once the trainer is built.
RUNNER = r"""
import atexit, inspect, sys
tree, argv = sys.argv[1], sys.argv[2:]
if tree != "installed":
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, tree)

def count_classes():
    registry = sys.modules.get("nnunet_25d.trainers.registry") or sys.modules.get("nnunet_25d.training.registry")
    n = 0 if registry is None else sum(inspect.isclass(v) and v.__module__ == registry.__name__
                                         and v.__name__.startswith("nnUNetTrainer") for v in vars(registry).values())
    print(f"LOOKUP_CLASSES {n}", flush=True)

from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as module
original = module.nnUNetTrainer.on_epoch_start
def on_epoch_start(self):
    count_classes()
    original(self)
module.nnUNetTrainer.on_epoch_start = on_epoch_start
from nnunetv2.run.run_training import run_training_entry
sys.argv = ["nnUNetv2_train", *argv]
run_training_entry()
"""


def time_to_first_epoch(tree: str, trainer_folder: Path, trainer: str, env: dict) -> tuple[float, int]:
    """Seconds from the process start to its first epoch, and the trainer classes the lookup built."""
    env = {**env, "nnUNet_extTrainer": str(trainer_folder), "nnUNet_n_proc_DA": "0"}
    args = [sys.executable, "-c", RUNNER, tree, "969", "2d", "0", "-tr", trainer, "-device", "cpu"]
    start = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    classes = -1
    for line in process.stdout:
        if line.startswith("LOOKUP_CLASSES"):
            classes = int(line.split()[1])
            elapsed = time.perf_counter() - start
            process.kill()
            process.wait()
            return elapsed, classes
    raise RuntimeError(f"{trainer} ended without an epoch (exit {process.wait()})")


def make_dataset(work: Path, env: dict) -> None:
    from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset

    if (work / "preprocessed" / "Dataset969_Synthetic25D" / "nnUNetPlans_2d").exists():
        return
    spec = SyntheticSpec(shape=(10, 32, 32), objects_per_class=3, radius_range=(2, 3), tube_length_range=(3, 6))
    write_dataset(work / "raw", 969, n_train=5, n_test=1, spec=spec, seed=3)
    subprocess.run(["nnUNetv2_plan_and_preprocess", "-d", "969", "-c", "2d", "-np", "1"], env=env, check=True,
                   capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--old-tree", type=Path, help="a checkout of the version to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from nnunet_25d import TRAINER_FOLDER, __version__

    env = {**os.environ, "nnUNet_def_n_proc": "1"}
    for name in ("raw", "preprocessed", "results"):
        (args.work / name).mkdir(parents=True, exist_ok=True)
        env[f"nnUNet_{name}"] = str(args.work / name)
    make_dataset(args.work, env)
    trees = [("installed", TRAINER_FOLDER, __version__)]
    if args.old_tree:
        trees.insert(0, (str(args.old_tree), args.old_tree / "nnunet_25d" / "trainers", "old tree"))
    rows = []
    for tree, folder, label in trees:
        for trainer in ("nnUNetTrainer", "nnUNetTrainer25D"):
            runs = [time_to_first_epoch(tree, folder, trainer, env) for _ in range(args.repeats)]
            seconds = statistics.median(t for t, _ in runs)
            rows.append({"version": label, "trainer": trainer, "seconds_to_first_epoch": round(seconds, 2),
                         "classes_built": runs[0][1]})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| version | trainer | s to first epoch (median) | variant classes made by the lookup |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['version']} | {row['trainer']} | {row['seconds_to_first_epoch']} | {row['classes_built']} |")


if __name__ == "__main__":
    main()
