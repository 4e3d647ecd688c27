"""Keithley DAQ6510 with 7700-series multiplexers (SCPI command set of its reference manual).

- Channels `(@101:160,201:260)`.  `[SENSe:]FUNCtion "VOLTage:DC"[,(@list)]`,
  `[SENSe:]VOLTage[:DC]:RANGe[:UPPer] r[,(@list)]`, `:RANGe:AUTO`, `:NPLCycles n[,(@list)]`,
  `:AZERo[:STATe] ON|OFF[,(@list)]` configure channels (without a list: the front input).
- `ROUTe:SCAN:CREate (@list)` makes the scan, channels in the order written;
  `ROUTe:SCAN:ADD`; `ROUTe:SCAN[:CREate]?`; `ROUTe:SCAN:COUNt:SCAN n` scans per run;
  `ROUTe:SCAN:COUNt:STEP?` channels per scan; `ROUTe:SCAN:BUFFer "buf"`;
  `ROUTe:CLOSe|OPEN (@list)`, `ROUTe:OPEN:ALL`, `ROUTe:CLOSe?`.
- `INITiate` runs the scan in the background into its buffer (`TRACe:ACTual?` grows while
  it runs, `ABORt` stops, `*WAI` waits); a buffer that fills wraps (fill mode CONTinuous)
  unless sized by `TRACe:POINts` first.  `READ?`/`MEASure:VOLTage?` read the front input
  `[SENSe:]COUNt` times.  Readings beyond a fixed range read +9.9E+37.
- Buffers and `TRACe:DATA? start,end,"buf",READ,CHAN,REL,UNIT`: `keithley_buffers.py`;
  `FORMat:DATA ASCii|SREal|REAL` and `FORMat:BORDer` as on the 2450.
- Time per channel: relay switching, the channel delay, NPLC at the line frequency
  (doubled with autozero), see `timing.py`.  Errors read `code,"message;type;time"`.
"""

from __future__ import annotations

import numpy as np

from hil.simulators.emulator.errors import SETTINGS_CONFLICT, ScpiError, err
from hil.simulators.emulator.keithley_buffers import ReadingBuffers
from hil.simulators.emulator.params import boolean, channel_list, number, split_params, text, unquote
from hil.simulators.emulator.readings import Acquisition, TraceDataFormat, auto_range, overload
from hil.simulators.emulator.scpi import Instrument, scpi
from hil.simulators.emulator.timing import CHANNEL_DELAY_S, SWITCH_S, reading_s

CHANNELS = {100 * s + c for s in (1, 2) for c in range(1, 61)}
RANGES = (0.1, 1.0, 10.0, 100.0, 1000.0)
FRONT = 0  # the front-panel input, configured by commands without a channel list


class Setup:
    def __init__(self) -> None:
        self.function, self.range, self.auto, self.nplc, self.azero = "", 10.0, True, 1.0, True


class KeithleyDAQ6510(ReadingBuffers, TraceDataFormat, Instrument):
    kind = "daq6510"
    idn = "KEITHLEY INSTRUMENTS,MODEL DAQ6510,EMU0001,1.7.12b"
    queue_size = 20
    no_error = '0,"No error;0;0 0"'
    error_format = '{code:d},"{message};1;2024/01/01 00:00:00.000"'
    column1 = "CHAN"

    def reset(self) -> None:
        self.setup = {FRONT: Setup()}
        self.setup[FRONT].function = "VOLT:DC"
        self.scan: list[int] = []
        self.scan_count = 1
        self.scan_buffer = "defbuffer1"
        self.count = 1
        self.closed: set[int] = set()
        self.fmt, self.swapped = "ASC", False
        self.reset_buffers()

    def _targets(self, params: list[str]) -> list[int]:
        """The channels a configuration command names (its last parameter), or the front input."""
        if len(params) > 1 and params[-1].strip().startswith("("):
            chans = channel_list(params[-1])
            bad = [c for c in chans if c not in CHANNELS]
            if bad:
                raise ScpiError(-222, f"Data out of range; no channel {bad[0]}")
            return chans
        return [FRONT]

    def _configure(self, raw: bytes, attr: str, parse) -> None:
        params = split_params(text(raw))
        value = parse(params[0])
        for c in self._targets(params):
            setattr(self.setup.setdefault(c, Setup()), attr, value)

    def _query(self, raw: bytes, attr: str, fmt) -> str:
        chans = self._targets(["", text(raw)]) if text(raw) else [FRONT]
        return ",".join(fmt(getattr(self.setup.get(c, Setup()), attr)) for c in chans)

    # --- configuration ------------------------------------------------------------------------
    @scpi("[SENSe:]FUNCtion[:ON]")
    def _func(self, raw: bytes) -> None:
        def parse(p: str) -> str:
            fn = unquote(p).upper()
            if fn not in ("VOLT:DC", "VOLTAGE:DC", "VOLT", "VOLTAGE"):
                raise ScpiError(-224, "Illegal parameter value; function")
            return "VOLT:DC"
        self._configure(raw, "function", parse)

    @scpi("[SENSe:]FUNCtion[:ON]?")
    def _func_q(self, raw: bytes) -> str:
        return self._query(raw, "function", lambda f: f or "NONE")

    @scpi("[SENSe:]VOLTage[:DC]:RANGe[:UPPer]")
    def _range(self, raw: bytes) -> None:
        self._configure(raw, "range", lambda p: auto_range(number(p, 0.0, 1000.0), RANGES, 1.0))
        self._configure(raw, "auto", lambda p: False)

    @scpi("[SENSe:]VOLTage[:DC]:RANGe[:UPPer]?")
    def _range_q(self, raw: bytes) -> str:
        return self._query(raw, "range", lambda v: f"{v:.6E}")

    @scpi("[SENSe:]VOLTage[:DC]:RANGe:AUTO")
    def _range_auto(self, raw: bytes) -> None:
        self._configure(raw, "auto", boolean)

    @scpi("[SENSe:]VOLTage[:DC]:NPLCycles")
    def _nplc(self, raw: bytes) -> None:
        self._configure(raw, "nplc", lambda p: number(p, 0.0005, 12.0))

    @scpi("[SENSe:]VOLTage[:DC]:NPLCycles?")
    def _nplc_q(self, raw: bytes) -> str:
        return self._query(raw, "nplc", lambda v: f"{v:.6E}")

    @scpi("[SENSe:]VOLTage[:DC]:AZERo[:STATe]")
    def _azero(self, raw: bytes) -> None:
        self._configure(raw, "azero", boolean)

    @scpi("[SENSe:]VOLTage[:DC]:AZERo[:STATe]?")
    def _azero_q(self, raw: bytes) -> str:
        return self._query(raw, "azero", lambda v: "1" if v else "0")

    @scpi("[SENSe:]COUNt")
    def _count(self, raw: bytes) -> None:
        self.count = int(number(text(raw), 1, 1_000_000))

    @scpi("[SENSe:]COUNt?")
    def _count_q(self, raw: bytes) -> str:
        return str(self.count)

    # --- scans and switching ----------------------------------------------------------------
    @scpi("ROUTe:SCAN:CREate")
    def _create(self, raw: bytes) -> None:
        self.scan = self._targets(["", text(raw)])

    @scpi("ROUTe:SCAN:ADD")
    def _add(self, raw: bytes) -> None:
        self.scan += [c for c in self._targets(["", text(raw)]) if c not in self.scan]

    @scpi("ROUTe:SCAN[:CREate]?")
    def _scan_q(self, raw: bytes) -> str:
        return "(@" + ",".join(str(c) for c in self.scan) + ")"

    @scpi("ROUTe:SCAN:COUNt:SCAN")
    def _scan_count(self, raw: bytes) -> None:
        self.scan_count = int(number(text(raw), 1, 100_000_000))

    @scpi("ROUTe:SCAN:COUNt:SCAN?")
    def _scan_count_q(self, raw: bytes) -> str:
        return str(self.scan_count)

    @scpi("ROUTe:SCAN:COUNt:STEP?")
    def _scan_step_q(self, raw: bytes) -> str:
        return str(len(self.scan))

    @scpi("ROUTe:SCAN:BUFFer")
    def _scan_buffer(self, raw: bytes) -> None:
        self.scan_buffer = self.buffer(text(raw))[0]

    @scpi("ROUTe:CLOSe")
    def _close(self, raw: bytes) -> None:
        chans = set(self._targets(["", text(raw)]))
        self.work(SWITCH_S[self.kind] * bool(chans ^ self.closed))
        self.closed = chans

    @scpi("ROUTe:OPEN")
    def _open(self, raw: bytes) -> None:
        self.closed -= set(self._targets(["", text(raw)]))

    @scpi("ROUTe:OPEN:ALL")
    def _open_all(self, raw: bytes) -> None:
        self.closed = set()

    @scpi("ROUTe:CLOSe?")
    def _closed_q(self, raw: bytes) -> str:
        return "(@" + ",".join(str(c) for c in sorted(self.closed)) + ")"

    # --- measurements -----------------------------------------------------------------------------
    def channel_s(self, c: int) -> float:
        s = self.setup[c]
        per = reading_s(self.kind, s.nplc, self.line_hz, s.azero)
        return per if c == FRONT else per + SWITCH_S[self.kind] + CHANNEL_DELAY_S

    def _values(self, chans: list[int], n: int) -> np.ndarray:
        """(n, k) readings of the channels, ranged: +9.9E+37 beyond a fixed range."""
        values = self.world.read(self.name, [str(c) if c else "" for c in chans], n)
        for j, c in enumerate(chans):
            s = self.setup[c]
            values[:, j] = overload(values[:, j], RANGES[-1] if s.auto else s.range)
        return values

    @scpi("INITiate[:IMMediate]")
    def _init(self, raw: bytes) -> None:
        if not self.scan:
            raise err(SETTINGS_CONFLICT, "no scan")
        missing = [c for c in self.scan if not self.setup.get(c, Setup()).function]
        if missing:
            raise err(SETTINGS_CONFLICT, f"channel {missing[0]} has no function")
        self.wait_idle()
        sweep = sum(self.channel_s(c) for c in self.scan)
        n = self.scan_count * len(self.scan)
        start = self.run_in_background(self.scan_count * sweep)
        values = self._values(self.scan, self.scan_count).reshape(-1)
        offsets = np.cumsum([self.channel_s(c) for c in self.scan])
        times = (start + sweep * np.arange(self.scan_count)[:, None] + offsets[None, :]).reshape(-1)
        rows = np.column_stack([values, np.tile(self.scan, self.scan_count), times])
        self.pending = (Acquisition(rows, start, sweep / len(self.scan)), self.scan_buffer, "Volt DC")
        self.closed = {self.scan[-1]} if n else set()

    def _front(self, raw: bytes) -> bytes | str:
        params = split_params(text(raw))
        key, buf = self.buffer(params[0] if params else None)
        self.wait_idle()
        start = self.clock.now()
        per = self.channel_s(FRONT)
        values = self._values([FRONT], self.count)[:, 0]
        self.work(self.count * per)
        rows = np.column_stack([values, np.zeros(self.count), start + per * np.arange(1, self.count + 1)])
        buf.add(rows, "Volt DC")
        return self.encode_rows(rows[-1:], ["Volt DC"], params[1:])

    @scpi("READ?")
    def _read(self, raw: bytes) -> bytes | str:
        return self._front(raw)

    @scpi("MEASure:VOLTage[:DC]?")
    def _meas(self, raw: bytes) -> bytes | str:
        self.setup[FRONT].function = "VOLT:DC"
        return self._front(raw)

    @scpi("FETCh?")
    def _fetch(self, raw: bytes) -> bytes | str:
        self.wait_idle()
        params = split_params(text(raw))
        _, buf = self.buffer(params[0] if params else None)
        if not len(buf.rows):
            raise ScpiError(-230, "Data corrupt or stale; buffer empty")
        return self.encode_rows(buf.rows[-1:], buf.units[-1:], params[1:])

    @scpi("ABORt")
    def _abort(self, raw: bytes) -> None:
        self.abort()
