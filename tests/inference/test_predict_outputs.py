"""``nnunet25d predict`` loses nothing and leaves nothing broken: inputs checked before any work, outputs under their
final names only when complete, ``--continue_prediction`` redoing what a killed run or a full disk left behind."""
from __future__ import annotations

import errno
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.files import OutputWriteError, atomic_path, is_complete
from nnunet_25d.deploy import memory

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_model_v0_1"
TRAINER = "nnUNetTrainer25D_2epochs_5iters"


@pytest.fixture
def results(tmp_path) -> Path:
    shutil.copytree(FIXTURE / "Dataset969_Synthetic25D", tmp_path / "results" / "Dataset969_Synthetic25D")
    return tmp_path / "results"


def predict(results: Path, inputs: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "nnUNet_raw": str(results.parent / "raw"), "nnUNet_preprocessed": str(results.parent / "pre"),
           "nnUNet_results": str(results), "nnUNet_extTrainer": str(TRAINER_FOLDER), "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "nnunet_25d.cli", "predict", "-i", str(inputs), "-o", str(output),
                           "-d", "969", "-c", "2d", "-f", "0", "-tr", TRAINER, "-npp", "1", "-nps", "1",
                           "--disable_progress_bar", *extra], capture_output=True, text=True, env=env, timeout=600)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout[-1000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    return line


def labels(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_continue_prediction_redoes_an_output_a_killed_run_left_incomplete(results, tmp_path):
    out = tmp_path / "out"
    assert predict(results, FIXTURE / "imagesTs", out).returncode == 0  # -device: cpu where there is no GPU
    first = labels(out / "case_005.nii.gz")
    data = (out / "case_005.nii.gz").read_bytes()
    (out / "case_005.nii.gz").write_bytes(data[:len(data) // 2])  # what a kill during the export leaves
    (out / ".partial_part0").mkdir()  # and its staging folder
    assert not is_complete(out / "case_005.nii.gz")
    result = predict(results, FIXTURE / "imagesTs", out, "--continue_prediction")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "case_005: redoing it, case_005.nii.gz is incomplete" in result.stdout
    assert np.array_equal(labels(out / "case_005.nii.gz"), first)
    assert sorted(p.name for p in out.iterdir()) == ["case_005.nii.gz", "dataset.json", "plans.json",
                                                     "predict_from_raw_data_args.json"]
    again = predict(results, FIXTURE / "imagesTs", out, "--continue_prediction")
    assert "all 1 case(s) already predicted" in again.stdout


def test_a_full_disk_is_one_line_and_leaves_no_truncated_output(results, tmp_path):
    out = tmp_path / "tiny_disk"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(out)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        line = one_error_line(predict(results, FIXTURE / "imagesTs", out, "--save_probabilities"))
        assert f"could not write {out}" in line and "then run the command again" in line
        left = [p.name for p in out.rglob("*")]
        assert not any(name.startswith("case_005") for name in left), left
    finally:
        subprocess.run(["umount", str(out)], check=True)


@pytest.mark.parametrize("problem, says", [
    ("extra_channel", "case case_005 has channel file(s) case_005_0000.nii.gz, case_005_0001.nii.gz; the model takes "
                      "1 channel(s)"),
    ("wrong_ending", "not named CASE_XXXX.nii.gz"),
    ("empty", "no images named CASE_0000.nii.gz in"),
    ("output_is_input", "is the input folder"),
    ("output_inside_input", "is inside the input folder"),
])
def test_bad_inputs_are_one_line_before_any_work(results, tmp_path, problem, says):
    inputs = tmp_path / "in"
    inputs.mkdir()
    if problem != "empty":
        shutil.copy(FIXTURE / "imagesTs" / "case_005_0000.nii.gz", inputs)
    if problem == "extra_channel":
        shutil.copy(FIXTURE / "imagesTs" / "case_005_0000.nii.gz", inputs / "case_005_0001.nii.gz")
    if problem == "wrong_ending":
        image = sitk.ReadImage(str(inputs / "case_005_0000.nii.gz"))
        sitk.WriteImage(image, str(inputs / "case_006_0000.nii"))
    out = {"output_is_input": inputs, "output_inside_input": inputs / "pred"}.get(problem, tmp_path / "out")
    line = one_error_line(predict(results, inputs, out))
    assert says in line
    assert not (tmp_path / "out").exists() and not (inputs / "pred").exists()


def test_an_interrupted_write_leaves_neither_the_final_nor_the_temporary_file(tmp_path):
    final = tmp_path / "case.nii.gz"
    with pytest.raises(OutputWriteError, match=f"could not write {final} completely \\(No space left on device\\)"):
        with atomic_path(final) as tmp:
            with gzip.open(tmp, "wb") as stream:
                stream.write(b"x" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputWriteError, match="the written file is incomplete"):
        with atomic_path(final) as tmp:
            tmp.write_bytes(gzip.compress(b"x" * 1000)[:20])  # a writer that stopped without saying so
    assert list(tmp_path.iterdir()) == []
    with atomic_path(final) as tmp:
        tmp.write_bytes(gzip.compress(b"whole"))
    assert [p.name for p in tmp_path.iterdir()] == ["case.nii.gz"] and gzip.decompress(final.read_bytes()) == b"whole"


@pytest.mark.parametrize("name, content, complete", [
    ("a.nii.gz", gzip.compress(b"x" * 100), True), ("a.nii.gz", gzip.compress(b"x" * 100)[:-4], False),
    ("a.nii.gz", b"", False), ("a.pkl", b"\x80\x04K\x01.", True), ("a.pkl", b"\x80\x04K\x01", False),
    ("a.nrrd", b"header", True),
])
def test_complete_files_by_their_kind(tmp_path, name, content, complete):
    (tmp_path / name).write_bytes(content)
    assert is_complete(tmp_path / name) == complete


def test_an_npz_cut_short_is_incomplete(tmp_path):
    np.savez_compressed(tmp_path / "p.npz", probabilities=np.random.default_rng(0).random((3, 8, 8)))
    assert is_complete(tmp_path / "p.npz")
    data = (tmp_path / "p.npz").read_bytes()
    (tmp_path / "p.npz").write_bytes(data[:len(data) - 30])
    assert not is_complete(tmp_path / "p.npz")


def test_a_case_that_cannot_fit_is_named_before_any_work(monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device, on_device: (2 ** 30, "RAM"))
    image = FIXTURE / "imagesTs" / "case_005_0000.nii.gz"  # 32 x 32 x 10 voxels at 0.8 x 0.8 x 4 mm
    configuration = {"spacing": [0.1, 0.1]}  # 64 x finer in-plane: 10 x 256 x 256 voxels
    memory.check_cases_fit({"case_005": [image]}, configuration, [0, 1, 2], 3, "cpu", True)  # 2.6 MB x 4 fits
    monkeypatch.setattr(memory, "free_bytes", lambda device, on_device: (2 ** 20, "GPU memory"))
    with pytest.raises(memory.NotEnoughMemory, match=r"case case_005 needs at least 0\.0 GiB of GPU memory "
                                                     r"\(655,360 voxels x 3 classes\).*--not_on_device"):
        memory.check_cases_fit({"case_005": [image]}, configuration, [0, 1, 2], 3, "cuda", True)


def test_resampled_voxels_follow_the_transpose_and_keep_a_2d_plans_slice_spacing():
    assert memory.resampled_voxels((32, 32, 10), (0.8, 0.8, 4.0), [0.4, 0.4], [0, 1, 2]) == 10 * 64 * 64
    assert memory.resampled_voxels((32, 32, 10), (0.8, 0.8, 4.0), [2.0, 0.8, 0.8], [0, 1, 2]) == 20 * 32 * 32
    assert memory.resampled_voxels((40, 32, 10), (0.8, 0.4, 4.0), [0.8, 0.8], [2, 0, 1]) == 40 * 50 * 16  # (z y x) = (10 32 40) -> (40 10 32)
    assert memory.case_bytes(100, 2, 3) == 2000


def test_available_ram_is_the_kernels_estimate():
    import psutil

    assert abs(memory.available_ram() - psutil.virtual_memory().available) < 2 ** 30  # read moments apart


def test_still_to_predict_keeps_complete_outputs_and_repeats_incomplete_ones(tmp_path, capsys):
    from nnunet_25d.files import output_files, still_to_predict

    assert output_files("a", ".nii.gz", False) == ["a.nii.gz"]
    assert output_files("a", ".nrrd", True) == ["a.nrrd", "a.npz", "a.pkl"]
    cases = {"done": [Path("done_0000.nii.gz")], "cut": [Path("cut_0000.nii.gz")], "new": [Path("new_0000.nii.gz")]}
    whole = gzip.compress(b"labels")
    (tmp_path / "done.nii.gz").write_bytes(whole)
    (tmp_path / "cut.nii.gz").write_bytes(whole[:5])
    todo = still_to_predict(cases, tmp_path, ".nii.gz", False, True)
    assert todo == {"cut": cases["cut"], "new": cases["new"]}
    assert capsys.readouterr().out == "cut: redoing it, cut.nii.gz is incomplete (left by an interrupted run)\n"
    assert not (tmp_path / "cut.nii.gz").exists() and (tmp_path / "done.nii.gz").read_bytes() == whole
    (tmp_path / "cut.nii.gz").write_bytes(whole[:5])
    assert still_to_predict(cases, tmp_path, ".nii.gz", False, False) == cases  # overwrite: every case
    assert capsys.readouterr().out == ""  # nothing to say without --continue_prediction
    assert not (tmp_path / "cut.nii.gz").exists()  # the incomplete one goes ...
    assert (tmp_path / "done.nii.gz").read_bytes() == whole  # ... a complete one stays until replaced
    assert still_to_predict({"done": cases["done"]}, tmp_path, ".nii.gz", True, True) == {"done": cases["done"]}


def test_move_into_place_and_atomic_text(tmp_path):
    from nnunet_25d.files import move_into_place, partial_name, write_text_atomically

    write_text_atomically(tmp_path / "report.md", "# report\n")
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
    assert partial_name(tmp_path / "a.nii.gz").name == f".partial_{os.getpid()}_a.nii.gz"
    (tmp_path / "staged.nii.gz").write_bytes(gzip.compress(b"x"))
    move_into_place(tmp_path / "staged.nii.gz", tmp_path / "final.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.nii.gz", "report.md"]
    (tmp_path / "staged.nii.gz").write_bytes(b"")
    with pytest.raises(OutputWriteError, match=r"could not write \S+final2.nii.gz completely \(the written file is "
                                               r"incomplete\): free space or choose a writable output folder"):
        move_into_place(tmp_path / "staged.nii.gz", tmp_path / "final2.nii.gz")
    assert not (tmp_path / "final2.nii.gz").exists()


def test_every_incomplete_output_of_a_case_is_named(tmp_path, capsys):
    from nnunet_25d.files import still_to_predict

    (tmp_path / "a.nii.gz").write_bytes(gzip.compress(b"x")[:4])
    (tmp_path / "a.npz").write_bytes(b"PK")
    still_to_predict({"a": [Path("a_0000.nii.gz")]}, tmp_path, ".nii.gz", True, True)
    assert "a: redoing it, a.nii.gz, a.npz is incomplete" in capsys.readouterr().out


def test_move_into_place_copies_across_file_systems(tmp_path, monkeypatch):
    import errno as errno_codes

    from nnunet_25d import files

    calls = []
    replace = os.replace

    def cross_device_once(source, target):
        calls.append(Path(target).name)
        if len(calls) == 1:
            raise OSError(errno_codes.EXDEV, "Invalid cross-device link")
        replace(source, target)

    monkeypatch.setattr(files.os, "replace", cross_device_once)
    (tmp_path / "staged.nii.gz").write_bytes(gzip.compress(b"labels"))
    files.move_into_place(tmp_path / "staged.nii.gz", tmp_path / "final.nii.gz")
    assert gzip.decompress((tmp_path / "final.nii.gz").read_bytes()) == b"labels"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.nii.gz"]  # the source moved, no partial left
    assert calls == ["final.nii.gz", "final.nii.gz"]  # the direct move refused, then the copy renamed into place
