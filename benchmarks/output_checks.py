"""What the input checks and complete-output handling of ``nnunet25d predict`` cost against its wall time.

    python benchmarks/output_checks.py --work /tmp/output_checks [--cases 4] [--shape 20 64 64]

Predicts generated cases of the demo's shape with the small model folder in tests/fixtures (trained by 0.1.0), with
``--save_probabilities``, then times, in this process and on the same files, every step the command adds to
nnU-Net's predictor: reading the case files, the output-folder check, the memory check, loading each checkpoint as
plain data, and checking and moving each output (segmentation, .npz, .pkl). Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "legacy_model_v0_1"
TRAINER = "nnUNetTrainer25D_2epochs_5iters"


def predict(work: Path, env: dict) -> float:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnunet_25d.cli", "predict", "-i", str(work / "in"), "-o", str(out), "-d",
                    "969", "-c", "2d", "-f", "0", "-tr", TRAINER, "-device", "cpu", "--save_probabilities", "-npp", "1",
                    "-nps", "1", "--disable_progress_bar"], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def checks_seconds(work: Path) -> float:
    """The added steps, on the files the prediction read and wrote."""
    import json

    from nnunet_25d.datasets.cases import cases_in, check_output_folder
    from nnunet_25d.files import is_complete, output_files, still_to_predict
    from nnunet_25d.inference.checkpoint_file import load_checkpoint_safely
    from nnunet_25d.deploy.memory import check_cases_fit

    model = work / "results" / "Dataset969_Synthetic25D" / f"{TRAINER}__nnUNetPlans__2d"
    plans = json.loads((model / "plans.json").read_text())
    out = work / "out"
    started = time.perf_counter()
    cases = cases_in(work / "in", ".nii.gz", 1)
    check_output_folder(work / "in", out)
    still_to_predict(cases, out, ".nii.gz", True, True)  # reads every output through (as --continue_prediction)
    check_cases_fit(cases, plans["configurations"]["2d"], plans["transpose_forward"], 3, "cpu", False)
    load_checkpoint_safely(model / "fold_0" / "checkpoint_final.pth")
    for case in cases:  # publishing: each output checked complete, then renamed
        for name in output_files(case, ".nii.gz", True):
            assert is_complete(out / name)
            os.replace(out / name, out / f"moved_{name}")
            os.replace(out / f"moved_{name}", out / name)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs=3, default=(20, 64, 64))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from nnunet_25d import TRAINER_FOLDER
    from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset

    shutil.rmtree(args.work, ignore_errors=True)
    shutil.copytree(FIXTURE / "Dataset969_Synthetic25D", args.work / "results" / "Dataset969_Synthetic25D")
    raw = write_dataset(args.work / "raw", 968, n_train=1, n_test=args.cases, spec=SyntheticSpec(shape=tuple(args.shape)),
                        seed=0)
    shutil.copytree(Path(raw) / "imagesTs", args.work / "in")
    env = {**os.environ, "nnUNet_raw": str(args.work / "raw"), "nnUNet_preprocessed": str(args.work / "pre"),
           "nnUNet_results": str(args.work / "results"), "nnUNet_extTrainer": str(TRAINER_FOLDER)}
    walls, checks = [], []
    for _ in range(args.repeats):
        walls.append(predict(args.work, env))
        checks.append(checks_seconds(args.work))
    wall, check = statistics.median(walls), statistics.median(checks)
    print(f"nnunet25d predict, {args.cases} cases of {tuple(args.shape)}, --save_probabilities: {wall:.2f} s "
          f"(median of {args.repeats}); its checks and output handling: {check * 1000:.0f} ms = {100 * check / wall:.2f} %")


if __name__ == "__main__":
    main()
