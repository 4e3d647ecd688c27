"""The one place that owns Ctrl-C, SIGTERM and the crossbar's safe state.

A first SIGINT or a SIGTERM asks the run to stop at the next batch boundary,
where it checkpoints and exits; a second SIGINT stops at once.  Once cleanup
starts, further signals are logged, not raised, so `safe_state()` always runs
to the end (bluesky #1072).  A run that stops early exits 130 (SIGINT) or 143
(SIGTERM) and resumes with `hil train --resume RUN`.

A stop asked from elsewhere (the dashboard's stop button writes a row to the run
store) takes the very same path: `StopWatcher` polls the store from a thread and
sends this process one SIGINT, as a Ctrl-C in its terminal would.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hil.interface import Crossbar

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class StopRequested(Exception):
    """Raised at a batch boundary after a signal; carries the exit code to use."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


class Runner:
    """Context manager: signal handling on entry, `safe_state()` and `close()` of every crossbar on exit."""

    def __init__(self) -> None:
        self.stop_signal: int | None = None
        self._crossbars: list[Crossbar] = []
        self._previous: dict[int, Any] = {}
        self._cleaning = False

    def __enter__(self) -> Runner:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._cleaning:
            log.warning("%s during cleanup: ignored until the safe state is reached", signal.Signals(signum).name)
            return
        if self.stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop_signal = signum
        log.warning("%s: stopping at the next batch boundary (Ctrl-C again to stop now)",
                    signal.Signals(signum).name)

    def attach(self, crossbar: Crossbar) -> Crossbar:
        self._crossbars.append(crossbar)
        return crossbar

    def checkpoint(self) -> None:
        """Where a requested stop lands: call between batches, after saving state."""
        if self.stop_signal is not None:
            raise StopRequested(self.stop_signal)

    @property
    def stopping(self) -> bool:
        return self.stop_signal is not None

    def __exit__(self, *exc: object) -> None:
        self._cleaning = True
        try:
            for xbar in reversed(self._crossbars):
                for action in (xbar.safe_state, xbar.close):
                    try:
                        action()
                    except Exception:
                        log.exception("cleanup of %r failed in %s", xbar, action.__name__)
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)


class StopWatcher:
    """Context manager: poll the run store for a stop request of `run_id` in a thread; on one, send this
    process a single SIGINT, so the run stops exactly as on Ctrl-C (checkpoint, safe state, resumable)."""

    def __init__(self, workspace: Any, run_id: str, every_s: float = 0.25) -> None:
        self.workspace, self.run_id, self.every_s = workspace, run_id, every_s
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="hil-stop-watcher", daemon=True)

    def _watch(self) -> None:
        from hil.store import Store

        with Store(self.workspace) as store:  # its own connection: SQLite connections stay in their thread
            while not self._done.wait(self.every_s):
                try:
                    hit = store.stop_requested(self.run_id)
                except Exception:  # a busy store is no reason to stop a run
                    log.debug("stop request poll failed", exc_info=True)
                    continue
                if hit:
                    log.warning("stop requested from the run store (dashboard): stopping as on Ctrl-C")
                    self.fired = True
                    os.kill(os.getpid(), signal.SIGINT)
                    return

    def __enter__(self) -> StopWatcher:
        # a process started in the background by a shell (`hil sweep ... &`) inherits SIGINT
        # ignored, and then the stop it sends itself would be lost: make it the Ctrl-C it stands for
        self._ignored = (threading.current_thread() is threading.main_thread()
                         and signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
        if self._ignored:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        if self._ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
