"""What every emulated instrument shares: message framing, SCPI headers, the error queue, IEEE 488.2 status.

Framing follows IEEE 488.2 on a socket: a program message ends at `\\n`, except inside a
definite-length binary block `#<n><len><data>` (whose data may hold any byte) or a
quoted string.  A message may hold several commands separated by `;`; a header
without a leading `:` continues at the path of the previous command, as SCPI-99
(vol. 1, 6.2.4) says.  Headers match in short form (the upper-case letters of the
manual) or long form, any case, with optional nodes in brackets.

The error queue holds `(code, message)` pairs (SCPI-99 21.8): reading it returns the
oldest entry, `0,"No error"` when empty; an overflow replaces the newest entry with
`-350,"Queue overflow"`.  Every error also sets its bit in the Standard Event Status
Register (`*ESR?`: CME for -1xx, EXE for -2xx, DDE for -3xx, QYE for -4xx), and the
power-on bit PON (128) is set when the instrument (re)starts.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Standard Event Status Register bits (IEEE 488.2 11.5.1)
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME, ESR_PON = 1, 4, 8, 16, 32, 128


class ScpiError(Exception):
    """An error the instrument puts in its queue: SCPI code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code, self.message = code, message


UNDEFINED_HEADER = (-113, "Undefined header")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_VALUE = (-224, "Illegal parameter value")
MISSING_PARAMETER = (-109, "Missing parameter")
DATA_TYPE = (-104, "Data type error")
SETTINGS_CONFLICT = (-221, "Settings conflict")


def err(pair: tuple[int, str], detail: str = "") -> ScpiError:
    return ScpiError(pair[0], pair[1] + (f"; {detail}" if detail else ""))


# --- framing -------------------------------------------------------------------------------
def split_message(buf: bytes) -> tuple[bytes | None, bytes]:
    """One program message off the front of `buf` (without its `\\n`), or None when incomplete."""
    i, n, quoted = 0, len(buf), False
    while i < n:
        c = buf[i : i + 1]
        if c == b'"':
            quoted = not quoted
        elif not quoted and c == b"#" and i + 1 < n and buf[i + 1 : i + 2].isdigit() and buf[i + 1 : i + 2] != b"0":
            d = int(buf[i + 1 : i + 2])
            if n < i + 2 + d:
                return None, buf
            length = int(buf[i + 2 : i + 2 + d] or b"0")
            i = i + 2 + d + length
            continue
        elif not quoted and c == b"\n":
            return buf[:i], buf[i + 1 :]
        i += 1
    return None, buf


def split_commands(msg: bytes) -> list[bytes]:
    """The `;`-separated commands of one message (not inside quotes, parentheses or binary blocks)."""
    out, start, i, n, quoted, depth = [], 0, 0, len(msg), False, 0
    while i < n:
        c = msg[i : i + 1]
        if c == b'"':
            quoted = not quoted
        elif not quoted and c == b"(":
            depth += 1
        elif not quoted and c == b")":
            depth = max(0, depth - 1)
        elif not quoted and c == b"#" and i + 1 < n and msg[i + 1 : i + 2].isdigit() and msg[i + 1 : i + 2] != b"0":
            d = int(msg[i + 1 : i + 2])
            length = int(msg[i + 2 : i + 2 + d] or b"0")
            i = i + 2 + d + length
            continue
        elif not quoted and depth == 0 and c == b";":
            out.append(msg[start:i])
            start = i + 1
        i += 1
    out.append(msg[start:])
    return [m.strip() for m in out if m.strip()]


def split_params(text: str) -> list[str]:
    """Comma-separated parameters, keeping quoted strings and `(@...)` channel lists whole."""
    out, cur, quoted, depth = [], "", False, 0
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and not quoted and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip() or out:
        out.append(cur.strip())
    return out


def block_data(param: bytes) -> bytes:
    """The data of an IEEE 488.2 definite-length block parameter."""
    if not param.startswith(b"#") or not param[1:2].isdigit() or param[1:2] == b"0":
        raise err(DATA_TYPE, "expected a definite-length block")
    d = int(param[1:2])
    length = int(param[2 : 2 + d])
    data = param[2 + d : 2 + d + length]
    if len(data) != length:
        raise ScpiError(-160, "Block data error")
    return data


def definite_block(data: bytes) -> bytes:
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + data


def channel_list(text: str) -> list[int]:
    """`(@101,103:105)` -> [101, 103, 104, 105] (SCPI-99 8.3.2)."""
    m = re.fullmatch(r"\s*\(@([0-9,:\s]*)\)\s*", text)
    if not m:
        raise ScpiError(-171, "Invalid expression; channel list")
    out: list[int] = []
    for part in filter(None, (p.strip() for p in m.group(1).split(","))):
        if ":" in part:
            lo, hi = (int(p) for p in part.split(":"))
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return out


def number(text: str, lo: float | None = None, hi: float | None = None, names: dict[str, float] | None = None) -> float:
    """A numeric parameter (with MIN/MAX/DEF names), checked against [lo, hi] (-222 outside)."""
    t = text.strip().upper()
    if not t:
        raise err(MISSING_PARAMETER)
    table = {"MIN": lo, "MINIMUM": lo, "MAX": hi, "MAXIMUM": hi, **{k.upper(): v for k, v in (names or {}).items()}}
    if t in table and table[t] is not None:
        return float(table[t])  # type: ignore[arg-type]
    try:
        v = float(t)
    except ValueError:
        raise err(DATA_TYPE, text[:20]) from None
    if not np.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise err(DATA_OUT_OF_RANGE, text[:20])
    return v


def boolean(text: str) -> bool:
    t = text.strip().upper()
    if t in ("ON", "1"):
        return True
    if t in ("OFF", "0"):
        return False
    raise err(ILLEGAL_VALUE, text[:20])


def unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        return t[1:-1]
    return t


def header_regex(pattern: str) -> re.Pattern[str]:
    """`[SENSe:]VOLTage[:DC]:NPLC?` -> a regex of every header the manual allows for it."""
    rx = ""
    for tok in re.findall(r"\*?[A-Z]+[a-z]*|\[|\]|:|\?", pattern):
        if tok == "[":
            rx += "(?:"
        elif tok == "]":
            rx += ")?"
        elif tok == ":":
            rx += ":"
        elif tok == "?":
            rx += r"\?"
        else:
            up = "".join(c for c in tok if c.isupper() or c == "*")
            low = tok[len(up) :]
            alts = [re.escape(up)] + ([re.escape((up + low).upper())] if low else [])
            rx += "(?:" + "|".join(alts) + ")" + ("" if up.startswith("*") else r"1?")
    return re.compile(rx)


Handler = Callable[..., Any]


def scpi(pattern: str) -> Callable[[Handler], Handler]:
    """Declare a method as the handler of one command pattern (a query pattern ends with `?`)."""

    def mark(fn: Handler) -> Handler:
        fn.__dict__.setdefault("_scpi", []).append(pattern)
        return fn

    return mark


class Instrument:
    """An emulated instrument: state, an error queue, and `handle(message) -> reply bytes | None`.

    Subclasses set `idn`, declare handlers with `@scpi("PATTERN")` (for SCPI
    instruments) or override `execute` (TSP), and implement `reset()` (what `*RST`
    and a power cycle restore).  `world` is the physics backing the readings.
    """

    idn = "HIL-EP,EMULATOR,0,0"
    queue_size = 10
    no_error = '+0,"No error"'
    error_format = '{code:+d},"{message}"'
    kind = ""

    def __init__(self, name: str, world: Any = None) -> None:
        self.name = name
        self.world = world
        self.lock = threading.RLock()
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = ESR_PON
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

    def power_cycle(self) -> None:
        """Everything volatile is lost: state back to power-on, error queue empty, PON set."""
        with self.lock:
            self.errors.clear()
            self.esr = ESR_PON
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
        """Run every command of one program message; the reply (with its `\\n`) if any query answered."""
        with self.lock:
            return self.execute(message)

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
        self.reset()

    @scpi("*CLS")
    def _cls(self, raw: bytes) -> None:
        self.errors.clear()
        self.esr = 0

    @scpi("*ESR?")
    def _esr(self, raw: bytes) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    @scpi("*OPC?")
    def _opc_q(self, raw: bytes) -> str:
        return "1"

    @scpi("*OPC")
    def _opc(self, raw: bytes) -> None:
        self.esr |= ESR_OPC

    @scpi("*WAI")
    def _wai(self, raw: bytes) -> None:
        """Every command here completes before the next is parsed."""

    @scpi("*TST?")
    def _tst(self, raw: bytes) -> str:
        return "0"

    @scpi("SYSTem:ERRor[:NEXT]?")
    def _syst_err(self, raw: bytes) -> str:
        return self.format_error(*self.next_error())

    @scpi("SYSTem:ERRor:COUNt?")
    def _syst_err_count(self, raw: bytes) -> str:
        return str(len(self.errors))


def text(raw: bytes) -> str:
    return raw.decode("latin-1").strip()


class TraceDataFormat:
    """`FORMat[:DATA]` and `FORMat:BORDer` of Keithley's TSP-generation SCPI (2450, DAQ6510), shared.

    Mixed in before `Instrument`; `reset()` of the instrument sets `fmt = "ASC"` and `swapped = False`.
    """

    fmt: str
    swapped: bool

    @scpi("FORMat[:DATA]")
    def _fmt(self, raw: bytes) -> None:
        t = text(raw).upper()
        fmt = {"ASC": "ASC", "ASCII": "ASC", "SRE": "SRE", "SREAL": "SRE", "REAL": "REAL"}.get(t)
        if fmt is None:
            raise ScpiError(-224, "Illegal parameter value")
        self.fmt = fmt

    @scpi("FORMat:BORDer")
    def _bord(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("NORM", "NORMAL", "SWAP", "SWAPPED"):
            raise ScpiError(-224, "Illegal parameter value")
        self.swapped = t.startswith("SWAP")

    def encode_readings(self, values: Any) -> str | bytes:
        """Readings as the format asks: ASCII, or a definite-length block of REAL32/REAL64."""
        if self.fmt == "ASC":
            return ",".join(f"{v:.9E}" for v in values)
        dt = ("<" if self.swapped else ">") + ("f4" if self.fmt == "SRE" else "f8")
        return definite_block(values.astype(dt).tobytes())
