"""Outputs that are whole or absent: files written under a temporary name in their folder and renamed when
complete, and a check that tells a complete output from one a killed run or a full disk left behind."""
from __future__ import annotations

import gzip
import os
import shutil
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nnunet_25d.errors import UserError

PARTIAL_PREFIX = ".partial_"  # hidden, and keeps the file's ending (writers choose the format by it)


class OutputWriteError(UserError, OSError):
    """An output that could not be written completely (disk full, read-only, no permission)."""


def write_failed(path: Path, reason: str) -> OutputWriteError:
    return OutputWriteError(f"could not write {path} completely ({reason}): free space or choose a writable output "
                            f"folder, then run the command again (with --continue_prediction where it predicts)")


def partial_name(final: Path) -> Path:
    return final.with_name(f"{PARTIAL_PREFIX}{os.getpid()}_{final.name}")


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """``with atomic_path(out) as tmp: write(tmp)``: ``out`` appears only once the block ended and ``tmp`` is a
    complete file (:func:`is_complete`); on any failure nothing is left under either name."""
    final = Path(final)
    tmp = partial_name(final)
    try:
        yield tmp
        if not is_complete(tmp):
            raise write_failed(final, "the written file is incomplete")
        os.replace(tmp, final)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OutputWriteError):
            raise
        raise write_failed(final, error.strerror or str(error)) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text)


def move_into_place(source: Path, final: Path) -> None:
    """Move a complete file into its final name (a temporary copy first when across file systems)."""
    if not is_complete(source):
        raise write_failed(final, "the written file is incomplete")
    try:
        os.replace(source, final)
    except OSError:
        with atomic_path(final) as tmp:
            shutil.copyfile(source, tmp)
        source.unlink()


def is_complete(path: Path) -> bool:
    """Whether ``path`` is a whole file: not empty, a gzip stream that ends with its checksum, a zip (``.npz``)
    whose members' checksums hold, a pickle that ends with its STOP opcode."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                while stream.read(1 << 20):
                    pass
        elif path.name.endswith(".npz"):
            with zipfile.ZipFile(path) as archive:
                return archive.testzip() is None
        elif path.name.endswith(".pkl"):
            with open(path, "rb") as stream:
                stream.seek(-1, os.SEEK_END)
                return stream.read(1) == b"."
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile):
        return False
    return True


def output_files(case: str, file_ending: str, save_probabilities: bool) -> list[str]:
    return [f"{case}{file_ending}"] + ([f"{case}.npz", f"{case}.pkl"] if save_probabilities else [])


def still_to_predict(cases: dict[str, list[Path]], output: Path, file_ending: str, save_probabilities: bool,
                     keep_finished: bool) -> dict[str, list[Path]]:
    """The cases to predict: all, or with --continue_prediction those without complete outputs. An incomplete
    output (left by a killed run or a full disk) is removed; a complete one stays until its replacement is whole."""
    todo = {}
    for case, files in cases.items():
        outputs = [output / name for name in output_files(case, file_ending, save_probabilities)]
        if keep_finished and all(is_complete(path) for path in outputs):
            continue
        broken = [path.name for path in outputs if path.exists() and not is_complete(path)]
        if keep_finished and broken:
            print(f"{case}: redoing it, {', '.join(broken)} is incomplete (left by an interrupted run)", flush=True)
        for path in outputs:
            if path.exists() and not is_complete(path):
                path.unlink()
        todo[case] = files
    return todo
