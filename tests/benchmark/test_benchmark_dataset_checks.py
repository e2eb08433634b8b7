"""The benchmark checks the raw dataset before nnU-Net plans it, and a failed nnU-Net step is one line quoting the
reason from its log: a file saved with another ending than dataset.json's (nnU-Net would leave the case out), a
label value dataset.json does not declare, channels of different shapes."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from tests.conftest import TINY_SPEC

from nnunet_25d.benchmark.dataset_check import check_file_endings, with_verification
from nnunet_25d.benchmark.runner import NNUNetRunner, NNUNetStepFailed, failure_reason
from nnunet_25d.datasets.synthetic import write_dataset
from nnunet_25d.errors import UserError

# dataset IDs of this file (see tests/conftest.py): 984 wrong ending, 985 stray label value, 986 channel shapes
MATRIX = ["--variants", "nnUNetTrainer:2d", "--folds", "0", "--schedule", "2x5", "-device", "cpu", "--no-find-best"]

SHAPE_LOG = """$ nnUNetv2_plan_and_preprocess -d 986 -c 2d -np 1 --verify_dataset_integrity
Fingerprint extraction...
ERROR! Not all input images have the same shape!
Shapes:
[(10, 32, 32), (10, 32, 40)]
Image files:
['/raw/imagesTr/case_001_0000.nii.gz', '/raw/imagesTr/case_001_0001.nii.gz']
multiprocessing.pool.RemoteTraceback:
\"\"\"
Traceback (most recent call last):
  File "/x/pool.py", line 125, in worker
RuntimeError
\"\"\"

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/x/nnUNetv2_plan_and_preprocess", line 8, in <module>
    sys.exit(plan_and_preprocess_entry())
RuntimeError
"""

LABEL_LOG = """$ nnUNetv2_plan_and_preprocess -d 985 -c 2d -np 1 --verify_dataset_integrity
Error: Unexpected labels found in file /raw/labelsTr/case_002.nii.gz.
Expected: [0, 1, 2]
Found: [0 1 2 7]
Traceback (most recent call last):
  File "/x/verify_dataset_integrity.py", line 207, in verify_dataset_integrity
    raise RuntimeError(
RuntimeError: Some segmentation images contained unexpected labels. Please check text output above to see which one(s).
"""

ASSERTION_LOG = """$ nnUNetv2_plan_and_preprocess -d 984
Traceback (most recent call last):
  File "/x/verify_dataset_integrity.py", line 150, in verify_dataset_integrity
    assert len(dataset) == expected_num_training, 'Did not find the expected number of training cases ' \\
AssertionError: Did not find the expected number of training cases (6). Found 5 instead.
Examples: ['case_000', 'case_001']
"""


@pytest.mark.parametrize("log, reason", [
    (SHAPE_LOG, "Not all input images have the same shape! Shapes: [(10, 32, 32), (10, 32, 40)] Image files: "
                "['/raw/imagesTr/case_001_0000.nii.gz', '/raw/imagesTr/case_001_0001.nii.gz']"),
    (LABEL_LOG, "Unexpected labels found in file /raw/labelsTr/case_002.nii.gz. Expected: [0, 1, 2] Found: [0 1 2 7]"),
    (ASSERTION_LOG, "AssertionError: Did not find the expected number of training cases (6). Found 5 instead. "
                    "Examples: ['case_000', 'case_001']"),
    ("$ x\nworking\nRuntimeError: CUDA out of memory\n\n", "RuntimeError: CUDA out of memory"),
])
def test_the_reason_of_a_failure_is_quoted_from_the_log_in_one_line(log, reason):
    assert failure_reason(log.splitlines()) == reason


def test_only_the_last_run_of_an_appended_log_counts():
    log = LABEL_LOG + "\n# 2025-01-01 00:00:00: run again, appended\n$ nnUNetv2_plan_and_preprocess\nValueError: other\n"
    assert failure_reason(log.splitlines()) == "ValueError: other"


def test_the_runner_appends_to_an_earlier_runs_log_and_quotes_this_runs_reason(tmp_path):
    import sys

    runner = NNUNetRunner(tmp_path)
    runner.run([sys.executable, "-c", "print('first run')"], "step")
    with pytest.raises(NNUNetStepFailed) as failed:
        runner.run([sys.executable, "-c", "print('ERROR! Not all input images have the same shape!'); "
                                          "print('Shapes:'); print([(1, 2), (1, 3)]); raise RuntimeError()"], "step")
    log = (tmp_path / "step.log").read_text()
    assert "first run" in log and log.count("$ ") == 2, "the first run's log is kept"
    assert "\n" not in failed.value.summary
    assert "Not all input images have the same shape! Shapes: [(1, 2), (1, 3)]" in failed.value.summary


def test_a_file_with_another_ending_than_dataset_json_is_named_before_planning(tmp_path):
    folder = write_dataset(tmp_path, 984, n_train=3, n_test=0, spec=TINY_SPEC)
    check_file_endings(folder, json.loads((folder / "dataset.json").read_text()))  # all .nii.gz: nothing to say
    image = folder / "imagesTr" / "case_001_0000.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(image)), str(image.with_name("case_001_0000.nii")))
    image.unlink()
    with pytest.raises(UserError) as error:
        check_file_endings(folder, json.loads((folder / "dataset.json").read_text()))
    message = str(error.value)
    assert "\n" not in message and str(image.with_name("case_001_0000.nii")) in message and "'.nii.gz'" in message


def test_planning_runs_nnunets_integrity_check():
    assert with_verification(["nnUNetv2_plan_and_preprocess", "-d", "1"])[-1] == "--verify_dataset_integrity"
    assert with_verification(["nnUNetv2_preprocess", "-d", "1"]) == ["nnUNetv2_preprocess", "-d", "1"]


def _one_line_failure(result) -> str:
    """The command's error: one line on stderr (library warnings aside), exit 1, no traceback."""
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("nnunet25d benchmark:")]
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, \
        result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == lines[0]
    return lines[0]


def test_benchmark_refuses_a_case_saved_as_nii_in_a_nii_gz_dataset(nnunet, tmp_path):
    folder = write_dataset(nnunet.raw, 984, n_train=6, n_test=0, spec=TINY_SPEC, seed=2)
    image = folder / "imagesTr" / "case_003_0000.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(image)), str(image.with_name("case_003_0000.nii")))
    image.unlink()
    result = nnunet.run("nnunet25d", "benchmark", "-d", "984", *MATRIX, "--output", str(tmp_path / "out"),
                        check=False)
    line = _one_line_failure(result)
    assert str(image.with_name("case_003_0000.nii")) in line and "file_ending '.nii.gz'" in line
    assert not (nnunet.preprocessed / folder.name).exists(), "nothing planned"


def test_benchmark_refuses_a_label_value_dataset_json_does_not_declare(nnunet, tmp_path):
    folder = write_dataset(nnunet.raw, 985, n_train=6, n_test=0, spec=TINY_SPEC, seed=3)
    label_file = folder / "labelsTr" / "case_002.nii.gz"
    label = sitk.ReadImage(str(label_file))
    array = sitk.GetArrayFromImage(label)
    array[0, 0, 0] = 7
    stray = sitk.GetImageFromArray(array)
    stray.CopyInformation(label)
    sitk.WriteImage(stray, str(label_file))
    result = nnunet.run("nnunet25d", "benchmark", "-d", "985", *MATRIX, "--output", str(tmp_path / "out"),
                        check=False)
    line = _one_line_failure(result)
    assert f"Unexpected labels found in file {label_file}" in line, line
    assert "7" in line.split("Found: ")[1].split("]")[0], line  # nnU-Net prints them as floats: [0. 1. 2. 7.]
    assert not list((nnunet.results / folder.name).glob("*/fold_0/checkpoint_final.pth")), "nothing trained"


def test_benchmark_quotes_nnunets_reason_for_channels_of_different_shapes(nnunet, tmp_path):
    folder = write_dataset(nnunet.raw, 986, n_train=6, n_test=0, spec=TINY_SPEC, seed=4)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    dataset_json["channel_names"] = {"0": "MRI", "1": "copy"}
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    for image in sorted((folder / "imagesTr").glob("*_0000.nii.gz")):
        shutil.copy(image, image.with_name(image.name.replace("_0000", "_0001")))
    wrong = folder / "imagesTr" / "case_001_0001.nii.gz"
    source = sitk.ReadImage(str(wrong))
    padded = sitk.GetImageFromArray(np.pad(sitk.GetArrayFromImage(source), ((0, 0), (0, 0), (0, 8))))
    padded.SetSpacing(source.GetSpacing())
    sitk.WriteImage(padded, str(wrong))
    result = nnunet.run("nnunet25d", "benchmark", "-d", "986", *MATRIX, "--output", str(tmp_path / "out"),
                        check=False)
    line = _one_line_failure(result)
    assert "nnUNetv2_plan_and_preprocess failed (exit 1): Not all input images have the same shape!" in line, line
    assert str(wrong) in line
