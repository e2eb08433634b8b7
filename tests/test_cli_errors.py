"""User errors in `nnunet25d` commands: one line on stderr and a non-zero exit; bugs keep their traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nnunet_25d import cli
from nnunet_25d.errors import UserError
from nnunet_25d.benchmark.runner import CommandFailed, NNUNetRunner
from nnunet_25d.geometry.slab import SlabSizeError


@pytest.fixture
def nnunet_folders(tmp_path, monkeypatch):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    return tmp_path


def test_demo_with_a_missing_dataset_prints_one_line_and_fails(nnunet_folders, tmp_path):
    result = subprocess.run([sys.executable, "-m", "nnunet_25d.cli", "demo", "-d", "999", "--workdir",
                             str(tmp_path / "work")], capture_output=True, text=True, timeout=300, env=os.environ)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Dataset999_*" in lines[0] and lines[0].startswith("nnunet25d demo: error:"), \
        result.stderr


def test_demo_without_nnunet_folders_names_them(monkeypatch, capsys):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "-d", "5"])
    assert exit_info.value.code == 1
    assert "set nnUNet_raw, nnUNet_preprocessed, nnUNet_results first" in capsys.readouterr().err


def test_benchmark_refuses_an_undeclared_plugin_trainer_in_one_line(nnunet_folders, capsys):
    (nnunet_folders / "nnUNet_raw" / "Dataset004_Toy").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["benchmark", "-d", "4", "--variants", "nnUNetTrainer25D_4slices", "--emit", "commands"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(err) == 1
    assert "positive odd number" in err[0] and "nnUNetTrainer25D_5slices" in err[0]


@pytest.mark.parametrize("error", [UserError("wrong ID"), SlabSizeError("slab size 4 is invalid"),
                                   FileNotFoundError("no such file: x")])
def test_user_errors_are_one_line_without_traceback(monkeypatch, capsys, error):
    def fails(args):
        raise error

    monkeypatch.setattr("nnunet_25d.cli._env", fails)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["env"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(error) in err and "--debug" in err


def test_bugs_and_debug_keep_the_traceback(monkeypatch):
    def bug(args):
        raise KeyError("a bug")

    def user_error(args):
        raise UserError("wrong ID")

    monkeypatch.setattr("nnunet_25d.cli._env", bug)
    with pytest.raises(KeyError):
        cli.main(["env"])
    monkeypatch.setattr("nnunet_25d.cli._env", user_error)
    for argv in (["--debug", "env"], ["env", "--debug"]):
        with pytest.raises(UserError):
            cli.main(argv)


def test_a_failed_nnunet_command_is_summarised_in_one_line(tmp_path, capsys, monkeypatch):
    runner = NNUNetRunner(tmp_path)
    with pytest.raises(CommandFailed) as failed:
        runner.run([sys.executable, "-c", "import sys; print('working'); print('ValueError: boom'); sys.exit(3)"],
                   "fails")
    summary = failed.value.summary
    assert "\n" not in summary and "exit 3" in summary and "ValueError: boom" in summary
    assert str(tmp_path / "fails.log") in summary
    assert str(failed.value).splitlines()[0].endswith(f"full log: {tmp_path / 'fails.log'}")  # benchmark's line

    def fails(args):
        raise failed.value

    monkeypatch.setattr("nnunet_25d.cli._env", fails)
    with pytest.raises(SystemExit):
        cli.main(["env"])
    assert capsys.readouterr().err.strip() == f"nnunet25d env: error: {summary} (--debug shows the traceback)"


def test_a_setup_error_ends_any_python_process_with_its_message_alone():
    """What nnUNetv2_train shows when the plugin refuses its plans: the message, exit status 1, no traceback."""
    result = subprocess.run([sys.executable, "-c", "from nnunet_25d.geometry.slab import check_slab_size; check_slab_size(4)"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "positive odd number" in result.stderr
    with pytest.raises(ValueError, match="positive odd number"):  # code that catches ValueError still does
        from nnunet_25d.geometry.slab import check_slab_size

        check_slab_size(4)


def test_deeplab_without_a_matching_torchvision_names_the_install(monkeypatch):
    from nnunet_25d.architectures.deeplab import DeepLabV3Plus2D, TorchvisionMismatch

    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # what a broken torchvision leaves
    with pytest.raises(TorchvisionMismatch, match="and torchvision must come from the same build") as error:
        DeepLabV3Plus2D(3, 2)
    assert "--index-url https://download.pytorch.org/whl/cpu" in str(error.value)


def test_ensemble_cv_of_an_unvalidated_fold_names_the_folds_there_are(nnunet_folders, capsys):
    model = nnunet_folders / "nnUNet_results" / "Dataset004_Toy" / "nnUNetTrainer25D__nnUNetPlans__2d"
    (model / "fold_0" / "validation").mkdir(parents=True)
    (model / "fold_0" / "validation" / "case_000.npz").write_bytes(b"")
    (nnunet_folders / "nnUNet_raw" / "Dataset004_Toy").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ensemble-cv", "-d", "4", "--models", "nnUNetTrainer25D:2d", "-f", "0", "1"])
    message = str(exit_info.value.code)
    assert message.startswith("nnUNetTrainer25D__nnUNetPlans__2d has no validation probabilities for fold(s) 1")
    assert "`nnUNetv2_train Dataset004_Toy 2d FOLD -tr nnUNetTrainer25D -p nnUNetPlans --npz`" in message
    assert message.endswith("folds with them: 0 (ensemble those with -f 0)")


def test_the_demo_names_a_truncated_checkpoint_instead_of_loading_it(tmp_path):
    from nnunet_25d.benchmark.demo import training_state

    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "summary.json").write_text("{}")
    (tmp_path / "checkpoint_final.pth").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(UserError, match="checkpoint_final.pth is truncated or corrupted .*delete it and run the demo"):
        training_state(tmp_path)
