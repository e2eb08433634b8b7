"""Whether a checkpoint file can be read, without loading it (torch's files are zip archives)."""
from __future__ import annotations

import zipfile
from pathlib import Path


def is_readable_checkpoint(path: Path) -> bool:
    """A torch checkpoint whose zip directory is intact: a file cut short by a full disk or a killed copy is not."""
    return path.is_file() and zipfile.is_zipfile(path)


def unreadable_checkpoint_message(path: Path, fix: str) -> str:
    return f"checkpoint {path} is truncated or corrupted (not a readable torch file): {fix}"
