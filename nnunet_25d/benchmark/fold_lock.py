"""One run at a time per fold (and per dataset's preprocessing): a lock file naming its holder (PID, host, when,
what), created exclusively, its modification time refreshed while the holder lives.

A second run waits for it (saying who holds it) or, with ``wait=False``, raises :class:`LockHeld` (one line: who
holds it, what to do). A lock whose holder is gone is taken over: on this host when its PID is no longer running,
from any host when it has not been refreshed for :data:`STALE_AFTER_S` (a node that died or a preempted SLURM job
whose requeued task runs elsewhere)."""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from nnunet_25d.errors import UserError

HEARTBEAT_S = 30.0
STALE_AFTER_S = 10 * 60.0  # 20 missed heartbeats: the holder is gone
POLL_S = 5.0


class LockHeld(UserError):
    """Another run holds the lock; the message names it and what to do."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: str
    what: str
    token: str

    @classmethod
    def me(cls, what: str) -> "Holder":
        return cls(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S"), what, uuid.uuid4().hex)

    def describe(self) -> str:
        return f"PID {self.pid} on {self.host}, since {self.started}"


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text())
        return Holder(int(data["pid"]), str(data["host"]), str(data["started"]), str(data["what"]),
                      str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def is_stale(path: Path, holder: Holder | None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """The holder is gone: its PID is not running on this host, or the lock was not refreshed for too long (an
    unreadable lock file too, once that old: a holder killed while writing it)."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if holder is not None and holder.host == socket.gethostname() and not pid_running(holder.pid):
        return True
    return age > stale_after_s


class FoldLock:
    """``with FoldLock(path, "nnUNetTrainer 2d fold 0"): ...``; see the module's docstring."""

    def __init__(self, path: Path, what: str, wait: bool = True, say: Callable[[str], None] | None = None,
                 poll_s: float = POLL_S, stale_after_s: float = STALE_AFTER_S, heartbeat_s: float = HEARTBEAT_S):
        self.path, self.what, self.wait = Path(path), what, wait
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.poll_s, self.stale_after_s, self.heartbeat_s = poll_s, stale_after_s, heartbeat_s
        self.holder: Holder | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _try_create(self) -> bool:
        me = Holder.me(self.what)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(asdict(me)))
        self.holder = me
        return True

    def _take_over(self, stale: Holder | None) -> None:
        """Move the stale lock aside (one run wins the rename); put back a live one that replaced it meanwhile."""
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = read_holder(aside)
            if moved is not None and (stale is None or moved.token != stale.token):
                try:
                    os.link(aside, self.path)  # a live lock created after ours was judged stale: restore it
                except FileExistsError:
                    pass
            else:
                self.say(f"{self.what}: took over the lock {self.path} of a run that is gone "
                         f"({stale.describe() if stale else 'unreadable'})")
        finally:
            aside.unlink(missing_ok=True)

    def acquire(self) -> None:
        announced = False
        while not self._try_create():
            holder = read_holder(self.path)
            if is_stale(self.path, holder, self.stale_after_s):
                self._take_over(holder)
                continue
            if holder is None:  # being written right now
                time.sleep(0.05)
                continue
            if not self.wait:
                raise LockHeld(f"{self.what} is being run by another benchmark ({holder.describe()}; lock: "
                               f"{self.path}): run again when it finished, or delete the lock if that run is gone")
            if not announced:
                self.say(f"{self.what}: waiting for the run holding it ({holder.describe()}; lock: {self.path})")
                announced = True
            time.sleep(self.poll_s)
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self.holder is not None and (current := read_holder(self.path)) is not None \
                and current.token == self.holder.token:
            self.path.unlink(missing_ok=True)
        self.holder = None

    def __enter__(self) -> "FoldLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def fold_lock_path(model_folder: Path, fold: int) -> Path:
    """Beside the fold's folder, hidden (nnU-Net lists ``fold_*`` folders, not this)."""
    return model_folder / f".nnunet25d_fold_{fold}.lock"


def preprocessing_lock_path(preprocessed_dataset: Path) -> Path:
    return preprocessed_dataset.parent / f".nnunet25d_{preprocessed_dataset.name}_preprocessing.lock"
