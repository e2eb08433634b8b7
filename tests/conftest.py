"""Shared fixtures: a tiny synthetic dataset, planned and preprocessed by the real nnU-Net commands."""
from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
from tqdm import tqdm

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.datasets.synthetic import SyntheticSpec, write_dataset

# mutmut forks a process per mutant and kills those that overrun; one killed inside a progress bar would leave
# tqdm's default lock (a semaphore shared across forks) taken, and every later progress bar would wait on it forever
tqdm.set_lock(threading.RLock())

TINY_SPEC = SyntheticSpec(shape=(10, 32, 32), objects_per_class=3, radius_range=(2, 3), tube_length_range=(3, 6))
# Every test shares one session's nnU-Net folders, so each dataset id belongs to one test file:
# 971 tiny (here), 972 Flat and 973 Thin (test_bad_input), 974 (test_slab_paths), 975 (test_benchmark_cli),
# 976 (test_multi_view_cli), 977 (test_views), 978 regions (test_deploy), 979 (test_benchmark_launch),
# 980 mixed thickness (test_self_configured_flow), 981 ROI crops of 971 (test_roi), 984-986
# (tests/benchmark/test_benchmark_dataset_checks, test_benchmark_locks).
TINY_ID = 971
TINY_NAME = f"Dataset{TINY_ID:03d}_Synthetic25D"
TINY_TRAINER = "nnUNetTrainer25D_10epochs_25iters"  # 250 steps: enough to learn the nodules reliably


class NNUNet:
    """Runs nnU-Net commands in a subprocess with this test session's nnU-Net folders."""

    def __init__(self, root: Path):
        self.root = root
        self.raw, self.preprocessed, self.results = root / "raw", root / "preprocessed", root / "results"
        for folder in (self.raw, self.preprocessed, self.results):
            folder.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "nnUNet_raw": str(self.raw),
            "nnUNet_preprocessed": str(self.preprocessed),
            "nnUNet_results": str(self.results),
            "nnUNet_extTrainer": str(TRAINER_FOLDER),
            "nnUNet_def_n_proc": "1",
            "OMP_NUM_THREADS": "2",
        }

    def run(self, *args: str, check: bool = True, training: bool = False,
            timeout: int = 900) -> subprocess.CompletedProcess:
        env = dict(self.env, nnUNet_n_proc_DA="0") if training else self.env
        result = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def popen(self, *args: str) -> subprocess.Popen:
        env = dict(self.env, nnUNet_n_proc_DA="0")
        return subprocess.Popen(list(args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def model_folder(self, dataset: str, trainer: str, configuration: str = "2d") -> Path:
        return self.results / dataset / f"{trainer}__nnUNetPlans__{configuration}"

    def plans(self, dataset: str) -> dict:
        return json.loads((self.preprocessed / dataset / "nnUNetPlans.json").read_text())

    def trainer(self, dataset: str, trainer_class: type, configuration: str, monkeypatch: pytest.MonkeyPatch):
        """An initialised trainer in this process (network, loaders), on CPU, without DA worker processes."""
        import torch

        self.set_environ(monkeypatch)
        monkeypatch.setenv("nnUNet_n_proc_DA", "0")
        plans = self.plans(dataset)
        plans["continue_training"] = False
        dataset_json = json.loads((self.preprocessed / dataset / "dataset.json").read_text())
        trainer = trainer_class(plans, configuration, 0, dataset_json, torch.device("cpu"))
        trainer.initialize()
        return trainer

    def set_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """For tests that use nnU-Net in-process (nnunetv2.paths reads the variables when used)."""
        for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
            monkeypatch.setenv(name, self.env[name])


@pytest.fixture(scope="session")
def nnunet(tmp_path_factory: pytest.TempPathFactory) -> NNUNet:
    return NNUNet(tmp_path_factory.mktemp("nnunet"))


@pytest.fixture(scope="session")
def tiny_dataset(nnunet: NNUNet) -> str:
    """A 6+2-case anisotropic dataset, planned and preprocessed for 2d with nnUNetv2_plan_and_preprocess."""
    write_dataset(nnunet.raw, TINY_ID, n_train=6, n_test=2, spec=TINY_SPEC, seed=1)
    nnunet.run("nnUNetv2_plan_and_preprocess", "-d", str(TINY_ID), "-c", "2d", "-np", "1")
    return TINY_NAME


@pytest.fixture(scope="session")
def trained_slab_model(nnunet: NNUNet, tiny_dataset: str) -> Path:
    """nnUNetTrainer25D trained on fold 0 through nnUNetv2_train (validation with --npz)."""
    nnunet.run("nnUNetv2_train", str(TINY_ID), "2d", "0", "-tr", TINY_TRAINER, "-device", "cpu", "--npz",
               training=True)
    return nnunet.model_folder(tiny_dataset, TINY_TRAINER)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything that runs nnU-Net commands is an integration test (deselect with -m "not integration")."""
    for item in items:
        if "nnunet" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
