"""The one place that owns Ctrl-C, SIGTERM and the crossbar's safe state.

A first SIGINT or a SIGTERM asks the run to stop at the next batch boundary,
where it checkpoints and exits; a second SIGINT stops at once.  Once cleanup
starts, further signals are logged, not raised, so `safe_state()` always runs
to the end (bluesky #1072).  A run that stops early exits 130 (SIGINT) or 143
(SIGTERM) and resumes with `hil train --resume RUN`.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

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
