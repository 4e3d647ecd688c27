"""What every hil-ep instrument shares: cleanup by writes only, short timeouts, error checks, binary blocks.

`SafeInstrument` is a mixin placed before pymeasure's `Instrument` in the bases.  It
keeps the last value written to each source (so that shutdown ramps down without a
single query), gives `_try` (write, log the failure, never raise) and
`short_timeout`, and checks the error queue after writes.  Reconnecting a dropped
session with back-off is `LabCrossbar._call`'s job (it owns the station's addresses).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class InstrumentError(RuntimeError):
    """The instrument reported an error in its queue, or answered something unreadable."""


class ReplyError(InstrumentError):
    """A reply that cannot be read (garbled, truncated, wrong count): a read may be retried."""


class QueuedError(InstrumentError):
    """An error the instrument put in its own queue (a refused command or value, a trip): never retried.

    Keeps what a user needs to act on it: the code and text as the instrument gave them, the last
    command sent before the queue was read, and the other entries the queue held.
    """

    def __init__(self, instrument: str, code: int, message: str, command: str, context: str,
                 rest: list[tuple[int, str]]) -> None:
        self.instrument, self.code, self.message = instrument, code, message
        self.command, self.context, self.rest = command, context, rest
        more = f" (+{len(rest)} more)" if rest else ""
        super().__init__(f"{instrument}: {code}, {message!r} after {self.sent}{more}")

    @property
    def sent(self) -> str:
        """`'COMMAND' (context)`: the last command sent, and what the driver was doing where it does not say."""
        what = repr(self.command[:60]) if self.command else "its last command"
        return what if not self.context or self.command.startswith(self.context) else f"{what} ({self.context})"


#: the time stamp a Keithley 2450/DAQ6510 appends to an error-queue message (`msg;severity;date time`)
_STAMP = re.compile(r";\d+;\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(\.\d+)?$")


def ramp_steps(v0: float, v1: float, max_step: float) -> list[float]:
    """Points from v0 (excluded) to v1 (included), no two more than `max_step` apart."""
    n = max(1, math.ceil(abs(v1 - v0) / max_step - 1e-12)) if v1 != v0 else 0
    return [v0 + (v1 - v0) * (k + 1) / n for k in range(n)]


def strict_scan_list(value: Any, values: Any) -> str:
    """Validate a list of channel numbers against `values` and format it as `(@101,102)`."""
    channels = [value] if isinstance(value, (int, str)) else list(value)
    if not channels:
        raise ValueError("empty channel list")
    allowed = set(values)
    for ch in channels:
        if int(ch) not in allowed:
            raise ValueError(f"channel {ch} is not on this instrument")
    return "(@" + ",".join(str(int(c)) for c in channels) + ")"


class SafeInstrument:
    """Mixin for pymeasure instruments: bookkeeping and safety shared by every hil-ep driver."""

    #: timeout (s) of each write during shutdown; the station's `cleanup_timeout_s`
    cleanup_timeout_s: float = 0.5
    #: error-queue query; TSP instruments override it
    error_query = "SYST:ERR?"
    #: mains-frequency query (`:SYST:LFR?`, TSP `print(localnode.linefreq)`); None: the instrument cannot say
    line_query: str | None = None
    #: drives something (a source, a DAC, a relay): its safe state must be confirmed; a DMM only measures
    has_outputs: bool = True

    def _init_safe(self) -> None:
        self.last_levels: dict[str, float] = {}
        self.cleanup_failures: list[tuple[str, str]] = []  # (what was not sent, why)
        self.last_command = ""  # what a timeout or a lost link was waiting on: named in the error a user sees
        self.unread_replies = 0  # queries that timed out: a link that keeps bytes (serial) still owes their replies
        self.writes = 0  # messages sent (queries too): the safe state is not redone when nothing was sent since
        self.sent_at = 0.0

    def write(self, command: str, **kwargs: Any) -> None:
        self.last_command = command
        self.writes += 1
        self.sent_at = time.monotonic()  # which of several instruments an operation talked to last
        super().write(command, **kwargs)  # type: ignore[misc]

    def write_bytes(self, content: bytes, **kwargs: Any) -> None:
        head = content[:60].split(b"#", 1)[0].decode("latin-1").strip().rstrip(",")  # `G:SET G1` of a block write
        self.last_command = f"{head} <{len(content)} bytes>" if head else f"<{len(content)} bytes>"
        self.writes += 1
        self.sent_at = time.monotonic()
        super().write_bytes(content, **kwargs)  # type: ignore[misc]

    def identify(self) -> str:
        """Get the identification string (*IDN?)."""
        return self.ask("*IDN?").strip()

    def resync(self, idn: str, max_lines: int = 10_000) -> int:
        """Bring a reopened session back in step: ask `*IDN?`, read up to its answer; the late replies dropped.

        On a link that keeps bytes across a reopen (a serial line) the replies still owed to queries
        that timed out (`unread_replies`) come first, in order, and would answer the next queries.
        """
        self.write("*IDN?")
        for dropped in range(max_lines):
            try:
                line = self.read().strip()
            except UnicodeDecodeError:  # a line of a binary block
                line = ""
            if line == idn and not self.unread_replies:
                if dropped:
                    log.warning("%s: %d late replies dropped after reconnecting", self.name, dropped)
                return dropped
            self.unread_replies = max(0, self.unread_replies - 1)
        raise ReplyError(f"{self.name}: no *IDN? reply in {max_lines} lines after reconnecting")

    def line_frequency(self) -> float:
        """Get the mains frequency the instrument measures (Hz); the timing model's when it cannot say."""
        if self.line_query is None:
            return float(self.timing.line_hz)  # type: ignore[attr-defined]
        reply = self.ask(self.line_query).strip()
        try:
            hz = float(reply)
        except ValueError:
            raise ReplyError(f"{self.name}: unreadable line frequency {reply!r}") from None
        if not 45.0 <= hz <= 66.0:
            raise ReplyError(f"{self.name}: line frequency {hz:g} Hz is not mains (50 or 60 Hz)")
        return hz

    # --- error queue --------------------------------------------------------------------
    def _parse_error(self, reply: str) -> tuple[int, str]:
        code, _, msg = reply.strip().partition(",")
        try:
            return int(float(code)), _STAMP.sub("", msg.strip().strip('"'))
        except ValueError:
            raise ReplyError(f"{self.name}: unreadable error-queue reply {reply!r}") from None

    def check_errors(self, max_entries: int = 10) -> list[tuple[int, str]]:
        """Get every entry of the error queue (up to max_entries) as (code, message); logs them."""
        errors = []
        for _ in range(max_entries):
            code, msg = self._parse_error(self.ask(self.error_query))
            if code == 0:
                break
            log.error("%s: error %d, %s", self.name, code, msg)
            errors.append((code, msg))
        return errors

    def write_checked(self, command: str) -> None:
        """Write, then read the error queue once; an error raises QueuedError."""
        self.write(command)
        self.raise_errors(command)

    def raise_errors(self, after: str) -> None:
        """Read the error queue once; an entry raises QueuedError naming the last command sent (`after`: what
        the driver was doing)."""
        sent = self.last_command
        code, msg = self._parse_error(self.ask(self.error_query))
        if code != 0:
            raise QueuedError(self.name, code, msg, sent, after, self.check_errors())

    # --- cleanup -------------------------------------------------------------------------
    @contextmanager
    def short_timeout(self, seconds: float) -> Iterator[None]:
        """Lower the VISA timeout for a block; the previous one comes back afterwards."""
        conn = getattr(self.adapter, "connection", None)
        old = None
        try:
            if conn is not None:
                old = conn.timeout  # a closed session raises here (pyvisa's InvalidSession)
                conn.timeout = seconds * 1000.0
        except Exception:  # a closed session may refuse even this
            log.debug("%s: could not lower the timeout", self.name, exc_info=True)
        try:
            yield
        finally:
            try:
                if conn is not None and old is not None:
                    conn.timeout = old
            except Exception:
                log.debug("%s: could not restore the timeout", self.name, exc_info=True)

    def _try(self, command: str | bytes) -> bool:
        """Write without raising: a failure is logged and recorded, and the caller goes on."""
        try:
            if isinstance(command, bytes):
                self.write_bytes(command)
            else:
                self.write(command)
            return True
        except Exception as exc:  # said once per instrument by the caller (`safe_state`), not per command
            what = command if isinstance(command, str) else self.last_command
            log.debug("%s: could not send %r during cleanup: %s", self.name, what[:60], exc)
            self.cleanup_failures.append((repr(what[:60]), brief(exc)))
            return False

    def ramp_down_commands(self, max_step: float) -> Iterator[str | bytes]:
        """Writes that take every source from its last written level to 0 V (override)."""
        return iter(())

    def output_off_commands(self) -> list[str | bytes]:
        """Writes that switch every output off (override)."""
        return []

    def safe_shutdown(self, max_step: float, step_s: float = 0.0, deadline: float | None = None) -> bool:
        """Ramp every source to 0 V and switch the outputs off, with writes only.

        Stops ramping at the first failed write (a dead link would cost one timeout per
        step) but still tries the outputs-off commands.  Returns True when all went out.
        """
        ok = True
        with self.short_timeout(self.cleanup_timeout_s):
            for cmd in self.ramp_down_commands(max_step):
                if deadline is not None and time.monotonic() > deadline:
                    self.cleanup_failures.append(("the rest of the ramp", "the cleanup deadline was reached"))
                    ok = False
                    break
                if not self._try(cmd):
                    ok = False
                    break
                if step_s:
                    time.sleep(step_s)
            for cmd in self.output_off_commands():
                ok = self._try(cmd) and ok
        if ok:
            self.last_levels = {k: 0.0 for k in self.last_levels}
        return ok

    # --- transport -----------------------------------------------------------------------
    def set_read_timeout(self, seconds: float) -> None:
        conn = getattr(self.adapter, "connection", None)
        if conn is not None:
            conn.timeout = seconds * 1000.0

    def read_timeout_s(self) -> float:
        conn = getattr(self.adapter, "connection", None)
        t = getattr(conn, "timeout", None)
        return float(t) / 1000.0 if isinstance(t, (int, float)) else 0.0

    @contextmanager
    def timeout_for(self, modelled_s: float) -> Iterator[None]:
        """The VISA timeout of one transaction, from its modelled duration: base + (1 + margin) * modelled.

        The base is the station's `timeout_s` (the timeout the session was opened with); the
        margin is `timing.TIMEOUT_MARGIN`.  The previous timeout comes back afterwards.
        """
        from hil.drivers.timing import timeout_s

        old = self.read_timeout_s()
        base = getattr(self, "base_timeout_s", None) or old
        if not old:  # an adapter without a timeout (the protocol tests'): nothing to set
            self.last_timeout_s = timeout_s(modelled_s, base or 0.0)
            yield
            return
        self.last_timeout_s = timeout_s(modelled_s, base)
        self.set_read_timeout(self.last_timeout_s)
        try:
            yield
        finally:
            self.set_read_timeout(old)

    def refuse_overloads(self, values: np.ndarray, channels: list[str], range_text: str) -> np.ndarray:
        """Refuse overload readings (+9.9E+37, -9.9E+37, NaN): an error naming instrument, channel and range.

        `values` is `(n, k)` with column j read on `channels[j]`.
        """
        bad = ~np.isfinite(values) | (np.abs(values) >= OVERLOAD_V)
        if np.any(bad):
            n, j = np.argwhere(bad)[0]
            ch = channels[int(j)]
            where = f"channel {ch} of {self.name}" if ch else self.name
            raise OverloadError(
                f"{where}: overload reading ({float(values[n, j]):+.1E}, sample {int(n) + 1}) on the {range_text} "
                "range; the node is beyond the range (or open): check the wiring and v_abs_max"
            )
        return values


def reason(exc: BaseException) -> str:
    """An exception's first line (its type when it has no text), at most 160 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def brief(exc: BaseException) -> str:
    """`reason`, with pyvisa's timeout text cut to one word."""
    text = reason(exc)
    return "timeout" if text.startswith("VI_ERROR_TMO") else text


#: |reading| at or above this is an instrument's overload code (Keithley and Keysight send 9.9E+37)
OVERLOAD_V = 9.0e37


class OverloadError(InstrumentError):
    """A reading was the instrument's overload code, not a voltage: never passed on as one."""


def parse_ascii(reply: str, expected: int, name: str) -> np.ndarray:
    """Comma-separated numbers, checked for count."""
    try:
        values = np.array([float(v) for v in reply.strip().split(",") if v.strip()], dtype=np.float64)
    except ValueError:
        raise ReplyError(f"{name}: unreadable data {reply[:60]!r}") from None
    if values.size != expected:
        raise ReplyError(f"{name}: expected {expected} readings, got {values.size}")
    return values


def parse_ieee_block(raw: bytes, dtype: str, expected: int, name: str) -> np.ndarray:
    """An IEEE 488.2 definite block `#<n><len><data>` (or `#0<data>` indefinite), checked for count."""
    if not raw.startswith(b"#"):
        raise ReplyError(f"{name}: expected a binary block, got {raw[:20]!r}")
    n = int(raw[1:2])
    if n == 0:  # indefinite length: the data runs to the terminator
        data = raw[2:]
        itemsize = np.dtype(dtype).itemsize
        while len(data) % itemsize and data[-1:] in (b"\n", b"\r"):
            data = data[:-1]
    else:
        length = int(raw[2 : 2 + n])
        data = raw[2 + n : 2 + n + length]
        if len(data) != length:
            raise ReplyError(f"{name}: binary block truncated ({len(data)} of {length} bytes)")
    values = np.frombuffer(data, dtype=dtype).astype(np.float64)
    if values.size != expected:
        raise ReplyError(f"{name}: expected {expected} readings, got {values.size}")
    return values


def ieee_block(values: np.ndarray, dtype: str = "<f4") -> bytes:
    """Encode values as an IEEE 488.2 definite-length block."""
    data = np.asarray(values, dtype=dtype).tobytes()
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + data


def read_binary(instrument: Any, dtype: str, expected: int) -> np.ndarray:
    """Read one binary block reply of `expected` values of `dtype` (e.g. "<f4").

    On a real VISA session pyvisa reads exactly the block's length (binary data may hold
    the termination character); any other adapter (the protocol tests') hands the reply over
    whole.
    """
    conn = getattr(instrument.adapter, "connection", None)
    try:
        import pyvisa.errors
        import pyvisa.resources

        is_visa = isinstance(conn, pyvisa.resources.MessageBasedResource)
    except ImportError:  # pragma: no cover - pyvisa is a dependency of the lab extra
        is_visa = False
    if is_visa:
        dt = np.dtype(dtype)
        try:
            values = conn.read_binary_values(
                datatype=dt.char, is_big_endian=dt.byteorder == ">", container=np.array, data_points=expected
            )
        except Exception as exc:  # pyvisa's block parser: no '#' header, bad length; link errors pass
            if isinstance(exc, (pyvisa.errors.VisaIOError, OSError)):
                raise
            raise ReplyError(f"{instrument.name}: unreadable binary block ({exc})") from None
        values = np.asarray(values, dtype=np.float64)
        if values.size != expected:
            raise ReplyError(f"{instrument.name}: expected {expected} readings, got {values.size}")
        return values
    return parse_ieee_block(instrument.read_bytes(-1), dtype, expected, instrument.name)


def dc_volt_range(v_max: float) -> float:
    """The smallest DMM DC-volts range (0.1, 1, 10, 100 V) that holds |V| <= v_max."""
    return next((r for r in (0.1, 1.0, 10.0) if v_max <= r), 100.0)
