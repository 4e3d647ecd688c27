"""What every emulated instrument shares: SCPI headers and dispatch, the error queue, IEEE 488.2 status, time.

A message may hold several commands separated by `;`; a header without a leading `:`
continues at the path of the previous command, as SCPI-99 (vol. 1, 6.2.4) says.
Headers match in short form (the upper-case letters of the manual) or long form, any
case, with optional nodes in brackets and numeric suffixes (`CALCulate3`, `SENSe[1]`).

The error queue holds `(code, message)` pairs (SCPI-99 21.8): reading it returns the
oldest entry, `0,"No error"` when empty; an overflow replaces the newest entry with
`-350,"Queue overflow"`.  Every error also sets its bit in the Standard Event Status
Register (`*ESR?`: CME for -1xx, EXE for -2xx, DDE for -3xx, QYE for -4xx), and the
power-on bit PON (128) is set when the instrument (re)starts.  The status byte
(`*STB?`, IEEE 488.2 11.2) holds EAV (4: an error queued), ESB (32: `*ESR` & `*ESE`),
the instrument's measurement summary (1) and MSS (64: any of them enabled by `*SRE`).

Time: an instrument works on its emulator's `Clock`.  A measurement started by `INIT`
runs in the background until `busy_until` (emulated seconds); what needs its results
(`FETCh?`, `TRACe:DATA?`, `*OPC?`, `*WAI`) waits for it; every query reply takes its
transfer time.  See `timing.py` for the model.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from hil.simulators.emulator.errors import UNDEFINED_HEADER, ScpiError, err
from hil.simulators.emulator.params import number, split_commands, text
from hil.simulators.emulator.timing import LINE_HZ, Clock, transfer_s

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Standard Event Status Register bits (IEEE 488.2 11.5.1)
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME, ESR_PON = 1, 4, 8, 16, 32, 128


def header_regex(pattern: str) -> re.Pattern[str]:
    """`[SENSe:]VOLTage[:DC]:NPLC?` -> a regex of every header the manual allows for it."""
    rx = ""
    for tok in re.findall(r"\*?[A-Z]+[a-z]*\d*|\[|\]|:|\?", pattern):
        if tok == "[":
            rx += "(?:"
        elif tok == "]":
            rx += ")?"
        elif tok == ":":
            rx += ":"
        elif tok == "?":
            rx += r"\?"
        else:
            word = tok.rstrip("0123456789")
            suffix = tok[len(word) :]
            up = "".join(c for c in word if c.isupper() or c == "*")
            low = word[len(up) :]
            alts = [re.escape(up)] + ([re.escape((up + low).upper())] if low else [])
            rx += "(?:" + "|".join(alts) + ")" + (suffix or ("" if up.startswith("*") else r"1?"))
    return re.compile(rx)


Handler = Callable[..., Any]


def scpi(pattern: str) -> Callable[[Handler], Handler]:
    """Declare a method as the handler of one command pattern (a query pattern ends with `?`)."""

    def mark(fn: Handler) -> Handler:
        fn.__dict__.setdefault("_scpi", []).append(pattern)
        return fn

    return mark


class Instrument:
    """An emulated instrument: state, an error queue, a clock, and `handle(message) -> reply bytes | None`.

    Subclasses set `idn`, declare handlers with `@scpi("PATTERN")` (for SCPI
    instruments) or override `execute` (TSP), and implement `reset()` (what `*RST`
    and a power cycle restore).  `world` is the physics backing the readings; `clock`
    and `line_hz` (the mains the instrument is plugged into) are set by the `Emulator`.
    """

    idn = "HIL-EP,EMULATOR,0,0"
    queue_size = 10
    no_error = '+0,"No error"'
    error_format = '{code:+d},"{message}"'
    kind = ""

    def __init__(self, name: str, world: Any = None, clock: Clock | None = None, line_hz: float = LINE_HZ) -> None:
        self.name = name
        self.world = world
        self.clock = clock or Clock()
        self.line_hz = line_hz
        self.lock = threading.RLock()
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = ESR_PON
        self.ese = 0
        self.sre = 0
        self.busy_until = 0.0
        self.commands_seen = 0
        self._table = self._build_table()
        self.reset()

    # --- what subclasses provide ------------------------------------------------------------
    def reset(self) -> None:
        """Power-on / *RST state."""

    def source_level(self, channel: str) -> float:
        """The voltage this instrument forces on `channel` now (V); 0 when it sources nothing there."""
        return 0.0

    def outputs_on(self) -> dict[str, bool]:
        """Output state of every source channel (for tests and the CLI)."""
        return {}

    def levels(self) -> dict[str, float]:
        return {}

    def trip(self) -> None:
        """A compliance trip: the instrument protects itself (outputs off, an error queued)."""
        raise NotImplementedError(f"{type(self).__name__} has no outputs to trip")

    def measurement_summary(self) -> bool:
        """Status byte bit 0 (the measurement event summary of the 2400); False where there is none."""
        return False

    def bus_trigger(self) -> None:
        """`*TRG` with no trigger layer waiting for it: -211 "Trigger ignored" (SCPI-99 21.8.9)."""
        raise ScpiError(-211, "Trigger ignored")

    # --- time -------------------------------------------------------------------------------------
    def work(self, seconds: float) -> None:
        """The instrument is busy for `seconds` (emulated) before it parses the next command."""
        self.clock.sleep(seconds)

    def run_in_background(self, seconds: float) -> float:
        """A measurement that runs for `seconds` after what is running now; its start time (emulated)."""
        start = max(self.clock.now(), self.busy_until)
        self.busy_until = start + seconds
        return start

    def wait_idle(self) -> None:
        """Wait until the measurement in progress has finished."""
        self.clock.sleep_until(self.busy_until)

    def abort(self) -> None:
        """Stop the measurement in progress now."""
        self.busy_until = min(self.busy_until, self.clock.now())

    # --- the error queue and status -----------------------------------------------------------
    def push_error(self, code: int, message: str) -> None:
        with self.lock:
            if len(self.errors) >= self.queue_size:
                self.errors[-1] = (-350, "Queue overflow")
            else:
                self.errors.append((code, message))
            if -199 <= code <= -100:
                self.esr |= ESR_CME
            elif -299 <= code <= -200:
                self.esr |= ESR_EXE
            elif -499 <= code <= -400:
                self.esr |= ESR_QYE
            else:
                self.esr |= ESR_DDE

    def next_error(self) -> tuple[int, str]:
        with self.lock:
            return self.errors.popleft() if self.errors else (0, "No error")

    def format_error(self, code: int, message: str) -> str:
        if code == 0:
            return self.no_error
        return self.error_format.format(code=code, message=message.replace('"', "'"))

    def status_byte(self) -> int:
        stb = (1 if self.measurement_summary() else 0) | (4 if self.errors else 0) | (32 if self.esr & self.ese else 0)
        return stb | (64 if stb & self.sre else 0)

    def power_cycle(self) -> None:
        """Everything volatile is lost: state back to power-on, error queue empty, PON set."""
        with self.lock:
            self.errors.clear()
            self.esr = ESR_PON
            self.ese = self.sre = 0
            self.busy_until = 0.0
            self.reset()

    # --- dispatch ---------------------------------------------------------------------------------
    def _build_table(self) -> list[tuple[re.Pattern[str], bool, Handler]]:
        table = []
        for cls in type(self).__mro__:
            for attr, fn in vars(cls).items():
                for pattern in getattr(fn, "_scpi", ()):
                    table.append((header_regex(pattern), pattern.endswith("?"), getattr(self, attr)))
        return table

    def handle(self, message: bytes) -> bytes | None:
        """Run every command of one program message; the reply (with its `\\n`) if any query answered.

        The reply leaves after its transfer time on the emulator's clock.
        """
        with self.lock:
            reply = self.execute(message)
            if reply:
                self.work(transfer_s(len(reply)))
            return reply

    def execute(self, message: bytes) -> bytes | None:
        replies: list[bytes] = []
        path = ""
        for cmd in split_commands(message):
            self.commands_seen += 1
            head_b, _, rest = cmd.partition(b" ")
            header = head_b.decode("latin-1").strip()
            if not header:
                continue
            if header.startswith(":"):
                header, path = header[1:], ""
            elif not header.startswith("*") and path:
                header = path + header
            if not header.startswith("*"):
                path = header.rsplit(":", 1)[0] + ":" if ":" in header else ""
            try:
                reply = self.dispatch(header.upper(), rest.strip())
            except ScpiError as exc:
                self.push_error(exc.code, exc.message)
                continue
            if reply is not None:
                replies.append(reply if isinstance(reply, bytes) else str(reply).encode("latin-1"))
        if not replies:
            return None
        return b";".join(replies) + b"\n"

    def dispatch(self, header: str, raw: bytes) -> Any:
        is_query = header.endswith("?")
        for rx, query, fn in self._table:
            if query == is_query and rx.fullmatch(header):
                return fn(raw)
        raise err(UNDEFINED_HEADER, header[:30])

    # --- IEEE 488.2 common commands ---------------------------------------------------------
    @scpi("*IDN?")
    def _idn(self, raw: bytes) -> str:
        return self.idn

    @scpi("*RST")
    def _rst(self, raw: bytes) -> None:
        self.abort()
        self.reset()

    @scpi("*CLS")
    def _cls(self, raw: bytes) -> None:
        self.errors.clear()
        self.esr = 0

    @scpi("*ESR?")
    def _esr(self, raw: bytes) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    @scpi("*ESE")
    def _ese(self, raw: bytes) -> None:
        self.ese = int(number(text(raw), 0, 255))

    @scpi("*ESE?")
    def _ese_q(self, raw: bytes) -> str:
        return str(self.ese)

    @scpi("*SRE")
    def _sre(self, raw: bytes) -> None:
        self.sre = int(number(text(raw), 0, 255)) & ~64

    @scpi("*SRE?")
    def _sre_q(self, raw: bytes) -> str:
        return str(self.sre)

    @scpi("*STB?")
    def _stb(self, raw: bytes) -> str:
        return str(self.status_byte())

    @scpi("*OPC?")
    def _opc_q(self, raw: bytes) -> str:
        self.wait_idle()
        return "1"

    @scpi("*OPC")
    def _opc(self, raw: bytes) -> None:
        self.wait_idle()
        self.esr |= ESR_OPC

    @scpi("*WAI")
    def _wai(self, raw: bytes) -> None:
        self.wait_idle()

    @scpi("*TRG")
    def _trg(self, raw: bytes) -> None:
        self.bus_trigger()

    @scpi("*TST?")
    def _tst(self, raw: bytes) -> str:
        return "0"

    @scpi("SYSTem:ERRor[:NEXT]?")
    def _syst_err(self, raw: bytes) -> str:
        return self.format_error(*self.next_error())

    @scpi("SYSTem:ERRor:COUNt?")
    def _syst_err_count(self, raw: bytes) -> str:
        return str(len(self.errors))

    @scpi("SYSTem:LFRequency?")
    def _lfr(self, raw: bytes) -> str:
        return f"{self.line_hz:g}"
