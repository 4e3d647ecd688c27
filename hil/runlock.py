"""One process per run: an advisory lock (flock) on `runs/<id>/lock` that the kernel drops when its process dies.

So a second `hil train --resume RUN` while the first is alive is refused (on a board both would
drive the instruments), a killed process leaves nothing stuck, and a run marked `running` whose
lock nobody holds is known to be dead: the store shows it as `interrupted`.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from hil.errors import UserError

#: a reader that probes the lock (`hil runs list`, the dashboard) holds it for microseconds: retry this long
_PROBE_GRACE_S = 0.5


class RunLock:
    """The lock of one run, held from `acquire()` until `release()` or the end of the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: str) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + _PROBE_GRACE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise UserError(f"{what} is already running in process {pid} (lock {self.path}); "
                                "stop that process first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def is_held(path: Path) -> bool:
    """True while some live process holds the run's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
