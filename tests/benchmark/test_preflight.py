"""The check before heavy work: the machine's state, warnings that name the fix, estimates, the default device."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tests.benchmark.benchmark_tree import job

from nnunet_25d.benchmark.estimate import largest_case_voxels, prediction_memory_gib, remaining_training
from nnunet_25d.benchmark.matrix import RESOURCES_FILE
from nnunet_25d.benchmark.preflight import MachineState, default_device, duration, estimate_line, machine_lines
from nnunet_25d.report.load import comparable_load, slowdown

IDLE = MachineState(cores=2, other_cpu_cores=0.02, available_memory_gib=20.0, gpu=None)
BUSY = MachineState(cores=2, other_cpu_cores=1.0, available_memory_gib=20.0, gpu=None)


def test_an_idle_machine_gets_one_line_and_no_warning():
    lines = machine_lines(IDLE, "cpu", need_memory_gib=3.0)
    assert lines == ["machine: 2 cores (0.02 busy with other work), 20.0 GiB memory free, no CUDA GPU; running on cpu"]


def test_a_busy_machine_is_warned_before_with_its_slowdown():
    warning = machine_lines(BUSY, "cpu", None)[1]
    assert warning.startswith("warning: other processes use 1.00 of 2 cores now") and "about 2.0x longer" in warning
    assert "stop the other work" in warning


def test_too_little_memory_and_cuda_without_gpu_are_warned_with_the_fix():
    lines = machine_lines(IDLE, "cuda", need_memory_gib=25.0)
    assert any("needs about 25.0 GiB" in line and "20.0 GiB are free" in line for line in lines)
    assert any("without a CUDA GPU" in line and "use -device cpu" in line for line in lines)


def test_the_device_is_cuda_only_with_a_gpu():
    assert default_device(None) == "cpu" and default_device("NVIDIA H200") == "cuda"


@pytest.mark.parametrize("other, cores, expected", [(0.0, 2, 1.0), (1.0, 2, 2.0), (1.5, 2, 4.0), (1.9, 2, 10.0),
                                                     (3.0, 2, 10.0), (2.0, 16, 16 / 14)])
def test_the_slowdown_is_the_share_of_cores_left(other, cores, expected):
    assert slowdown(other, cores) == pytest.approx(expected)


def test_the_estimate_scales_with_the_load_now():
    assert estimate_line(600.0, IDLE, "measured") == "estimated wall time: 10 min (measured)"
    assert estimate_line(600.0, BUSY, "measured") == \
        "estimated wall time: 20 min (measured, 2.0x for the other work running now)"
    assert estimate_line(None, IDLE, "no reference") == "estimated wall time: unknown (no reference)"
    assert duration(3 * 3600 + 5 * 60) == "3 h 05 min"


@pytest.mark.parametrize("a, b, comparable", [
    (0.02, 0.01, True),  # both idle
    (0.02, 0.45, True),  # neither over a quarter of 2 cores
    (1.36, 1.06, False),  # the first-run review's demo: both busy, 3.1x vs 2.1x slower
    (0.02, 0.7, False),  # one contended
    (1.02, 1.04, True),  # alike: within 10 % slowdown
    (float("nan"), float("nan"), True),  # not recorded for either: nothing says they differ
    (float("nan"), 1.2, False),
])
def test_timings_compare_only_under_comparable_load(a, b, comparable):
    assert comparable_load(a, b, 2) is comparable


def test_remaining_training_comes_from_the_finished_folds_of_each_variant(tmp_path):
    from tests.benchmark.benchmark_tree import write_fold

    finished = [job(tmp_path, "nnUNetTrainer", "2d", f) for f in (0, 1)]
    for seconds, fold_job in zip((100.0, 300.0), finished):
        write_fold(fold_job, {"c0": {}})
        (fold_job.fold_folder / RESOURCES_FILE).write_text(json.dumps({"wall_seconds": seconds}))
    todo = [job(tmp_path, "nnUNetTrainer", "2d", 2), job(tmp_path, "nnUNetTrainer25D", "2d", 0)]
    seconds, basis = remaining_training(finished + todo)
    assert seconds == pytest.approx(200.0)
    assert basis.startswith("1 of 2 runs to train") and "1 runs of variants without a timed fold" in basis
    assert remaining_training(todo[1:])[0] is None
    assert remaining_training(finished) == (0.0, "every fold is trained")


def test_prediction_memory_of_the_largest_case_at_the_plans_spacing(tmp_path):
    fingerprint = {"shapes_after_crop": [[100, 256, 256], [300, 200, 200]], "spacings": [[2.5, 0.8, 0.8]] * 2}
    plans = {"transpose_forward": [0, 1, 2], "configurations": {"2d": {"spacing": [0.4, 0.4]},
                                                                "3d_fullres": {"spacing": [2.5, 0.8, 0.8]}}}
    dataset = {"labels": {"background": 0, "a": 1, "b": 2}, "channel_names": {"0": "CT", "1": "PET"}}
    for name, content in (("dataset_fingerprint.json", fingerprint), ("nnUNetPlans.json", plans),
                          ("dataset.json", dataset)):
        (tmp_path / name).write_text(json.dumps(content))
    # 2d halves the in-plane spacing: case 2 has 300 x 400 x 400 voxels; 3 classes x 6 B + 2 channels x 4 B
    assert prediction_memory_gib(tmp_path, "nnUNetPlans", ["2d", "3d_fullres"]) == \
        pytest.approx(300 * 400 * 400 * 26 / 2 ** 30 + 1.0)
    assert largest_case_voxels(fingerprint, [0, 1, 2], [2.5, 0.8, 0.8]) == 300 * 200 * 200
    assert prediction_memory_gib(tmp_path / "unplanned", "nnUNetPlans", ["2d"]) is None


def test_preflight_prints_the_state_then_the_estimate(capsys):
    from nnunet_25d.benchmark.preflight import preflight

    assert preflight("cuda", 600.0, "measured", 30.0, BUSY) is BUSY
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("machine: 2 cores (1.00 busy") and lines[0].endswith("running on cuda")
    assert [line.split(":")[1].split()[0] for line in lines[1:4]] == ["other", "this", "-device"]
    assert lines[4] == "estimated wall time: 20 min (measured, 2.0x for the other work running now)"


def test_the_machine_is_read_from_psutil_and_torch():
    import psutil
    import torch

    from nnunet_25d.benchmark.preflight import read_machine

    state = read_machine(sample_seconds=0.2)
    assert state.cores == psutil.cpu_count() and state.other_cpu_cores >= 0
    assert 0 < state.available_memory_gib <= psutil.virtual_memory().total / 2 ** 30
    assert (state.gpu is None) == (not torch.cuda.is_available())


def test_edges_of_the_warnings_and_the_estimate():
    gpu = MachineState(cores=2, other_cpu_cores=0.4, available_memory_gib=20.0, gpu="NVIDIA H200")
    lines = machine_lines(gpu, "cuda", need_memory_gib=20.0)
    assert lines == ["machine: 2 cores (0.40 busy with other work), 20.0 GiB memory free, GPU NVIDIA H200; running "
                     "on cuda"], "no warning: not busy, the memory just fits, a GPU for cuda"
    assert machine_lines(IDLE, "cuda", None)[1].startswith("warning: -device cuda on a machine without a CUDA GPU")
    assert estimate_line(600.0, gpu, "m") == "estimated wall time: 10 min (m)", "below the flag: no slowdown applied"
    assert [duration(s) for s in (10, 70, 3600, 7200, 3660)] == ["1 min", "1 min", "1 h 00 min", "2 h 00 min",
                                                                  "1 h 01 min"]


def test_the_estimate_leaves_out_failed_and_corrupt_runs(tmp_path):
    from tests.benchmark.benchmark_tree import write_fold

    timed = job(tmp_path, "nnUNetTrainer", "2d", 0)
    write_fold(timed, {"c0": {}})
    (timed.fold_folder / RESOURCES_FILE).write_text(json.dumps({"wall_seconds": 100.0}))
    failed = job(tmp_path, "nnUNetTrainer", "2d", 1)  # recorded, not finished: not a timing of a whole run
    failed.fold_folder.mkdir(parents=True)
    (failed.fold_folder / RESOURCES_FILE).write_text(json.dumps({"wall_seconds": 5.0}))
    corrupt = job(tmp_path, "nnUNetTrainer", "2d", 2)
    corrupt.fold_folder.mkdir(parents=True)
    (corrupt.fold_folder / "checkpoint_final.pth").write_bytes(b"cut")
    assert remaining_training([timed, failed, corrupt]) == (100.0, "1 of 1 runs to train, from the finished folds "
                                                                   "of their variants")


def test_the_spacing_is_read_in_the_plans_axis_order(tmp_path):
    fingerprint = {"shapes_after_crop": [[256, 256, 40]], "spacings": [[0.4, 0.4, 2.5]]}  # slices on the last axis
    assert largest_case_voxels(fingerprint, [2, 0, 1], [0.8, 0.8]) == pytest.approx(256 * 256 * 40 / 4)
    assert largest_case_voxels(fingerprint, [2, 0, 1], None) == 256 * 256 * 40
    assert largest_case_voxels({"shapes_after_crop": [], "spacings": []}, [0, 1, 2], None) == 0
    plans = {"transpose_forward": [2, 0, 1], "configurations": {"2d": {"spacing": [0.8, 0.8]}}}
    dataset = {"labels": {"background": 0, "a": 1}, "channel_names": {"0": "MR"}}
    for name, content in (("dataset_fingerprint.json", fingerprint), ("nnUNetPlans.json", plans),
                          ("dataset.json", dataset)):
        (tmp_path / name).write_text(json.dumps(content))
    per_voxel = 2 * 6 + 4
    assert prediction_memory_gib(tmp_path, "nnUNetPlans", ["2d"]) == \
        pytest.approx(256 * 256 * 40 / 4 * per_voxel / 2 ** 30 + 1.0)
    assert prediction_memory_gib(tmp_path, "nnUNetPlans", ["3d_lowres"]) == \
        pytest.approx(256 * 256 * 40 * per_voxel / 2 ** 30 + 1.0), "an unplanned configuration: as cropped"


BROKEN_TORCHVISION = 'raise RuntimeError("operator torchvision::nms does not exist")\n'


@pytest.mark.parametrize("command", [["demo", "--workdir", "{work}"], ["benchmark", "-d", "{dataset}"]])
def test_a_broken_torchvision_is_named_in_one_line_with_the_fix_before_any_nnunet_command(tmp_path, command):
    """The same failure a torchvision built for another torch gives inside nnU-Net's trainer lookup."""
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(BROKEN_TORCHVISION)
    work = tmp_path / "work"
    raw, preprocessed, results = (tmp_path / name for name in ("raw", "preprocessed", "results"))
    from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset

    write_dataset(raw, 523, n_train=2, n_test=0, spec=SyntheticSpec(shape=(4, 24, 24), objects_per_class=1,
                                                                    radius_range=(2, 3)), seed=0)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "nnUNet_raw": str(raw),
           "nnUNet_preprocessed": str(preprocessed), "nnUNet_results": str(results)}
    args = [arg.format(work=work, dataset="523") for arg in command]
    result = subprocess.run([sys.executable, "-m", "nnunet_25d.cli", *args], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "operator torchvision::nms does not exist" in line
    assert "Install torch and torchvision from one source: `pip install torch==" in line
    assert not work.exists() and not preprocessed.exists()  # nothing planned, nothing written
