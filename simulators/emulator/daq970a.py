"""Keysight DAQ970A / Agilent 34970A: scan lists of DC-volt channels on multiplexer cards.

From the DAQ970A programming reference (and the 34970A user's guide, which agrees):
- `CONFigure[:VOLTage][:DC] [range|AUTO|MIN|MAX|DEF[,res]],(@list)` sets the function,
  range and 1 PLC of the channels, and makes them the scan list; `MEASure:VOLTage:DC? ...`
  is `CONFigure` + `READ?`.  `[SENSe:]VOLTage[:DC]:NPLC n,(@list)`, `:RANGe r,(@list)`,
  `:RANGe:AUTO`, `[SENSe:]ZERO:AUTO OFF|ON|ONCE,(@list)` (on by default: a zero reading
  after each reading, which doubles its time) and their queries `...? (@list)`.
- `ROUTe:SCAN (@list)`: the instrument scans in ascending channel order whatever order
  the list was written in; `ROUTe:SCAN?` returns the list as a definite-length block;
  `ROUTe:SCAN:SIZE?`; `ROUTe:CHANnel:DELay t,(@list)` / `:DELay:AUTO` (auto: 2 ms for DC volts).
- `TRIGger:COUNt n|INF` sweeps per `INITiate`, `TRIGger:SOURce IMMediate|BUS|TIMer|EXTernal`
  (BUS: each `*TRG` starts one sweep), `TRIGger:TIMer`; `INITiate` scans in the background;
  `FETCh?` waits for the scan and returns every reading in memory; `READ?` = `INIT` + `FETCh?`;
  `R? [max]` and `DATA:REMove? n` return and erase the oldest readings (`R?` as a
  definite-length block; `DATA:REMove?` more than stored: -222); `DATA:POINts?` counts
  what memory holds now; `ABORt` stops the scan, keeping what it read.
- Readings are ASCII `+1.23456789E-01`; `FORMat:READing:CHANnel|TIME|UNIT|ALARm ON|OFF`
  add fields to each (TIME: seconds since the scan started, on the emulator's clock).
  An input beyond 120 % of a fixed range reads +9.9E+37 (-9.9E+37 below).
- Memory holds 1 000 000 readings (50 000 on the 34970A); a scan beyond it keeps the newest.
- A scan of a channel not configured for DC volts, or an empty scan list, is -221.
- Time per channel: relay switching, the channel delay, NPLC at the line frequency
  (doubled with autozero); see `timing.py`.
"""

from __future__ import annotations

import numpy as np

from hil.simulators.emulator.errors import SETTINGS_CONFLICT, ScpiError, err
from hil.simulators.emulator.params import boolean, channel_list, definite_block, number, split_params, text
from hil.simulators.emulator.readings import auto_range, overload
from hil.simulators.emulator.scpi import Instrument, scpi
from hil.simulators.emulator.timing import CHANNEL_DELAY_S, SWITCH_S, reading_s

SLOTS = (1, 2, 3)
CHANNELS = {100 * s + c for s in SLOTS for c in range(1, 41)}
RANGES = (0.1, 1.0, 10.0, 100.0, 300.0)


class Setup:
    def __init__(self) -> None:
        self.function, self.range, self.auto, self.nplc, self.azero = "", 10.0, True, 1.0, True
        self.delay, self.delay_auto = CHANNEL_DELAY_S, True


class DAQ970A(Instrument):
    kind = "daq970a"
    idn = "Keysight Technologies,DAQ970A,EMU00001,A.02.02-01.00-02.01-00.02-03-01"
    queue_size = 20
    memory = 1_000_000

    def reset(self) -> None:
        self.setup: dict[int, Setup] = {}
        self.scan: list[int] = []
        self.trig_count = 1
        self.trig_source = "IMM"
        self.trig_timer = 1.0
        self.fields = {"CHAN": False, "TIME": False, "UNIT": False, "ALAR": False}
        self.stored = np.zeros((0, 3))  # reading, channel, time since the scan started
        self.scan_start = 0.0
        self.armed = 0
        self.initiated = 0

    def _channels(self, raw: str) -> list[int]:
        chans = channel_list(raw)
        bad = [c for c in chans if c not in CHANNELS]
        if bad:
            raise ScpiError(-222, f"Data out of range; no channel {bad[0]}")
        return chans

    def _each(self, raw: bytes, fn) -> None:
        """`value,(@list)`: fn(setup, value) for each channel of the list."""
        params = split_params(text(raw))
        if len(params) != 2:
            raise ScpiError(-109, "Missing parameter; value and channel list")
        for c in self._channels(params[1]):
            fn(self.setup.setdefault(c, Setup()), params[0])

    def _query(self, raw: bytes, fmt) -> str:
        return ",".join(fmt(self.setup.get(c, Setup())) for c in self._channels(text(raw)))

    # --- configuration ------------------------------------------------------------------------
    def _configure(self, raw: bytes) -> None:
        params = split_params(text(raw))
        if not params or not params[-1].startswith("("):
            raise ScpiError(-109, "Missing parameter; channel list")
        chans = self._channels(params[-1])
        spec = params[0].upper() if len(params) > 1 else "AUTO"
        for c in chans:
            s = self.setup.setdefault(c, Setup())
            s.function, s.nplc, s.auto = "VOLT:DC", 1.0, spec in ("AUTO", "DEF")
            if not s.auto:
                s.range = auto_range(number(params[0], 0.0, 300.0, {"MIN": 0.1, "MAX": 300.0}), RANGES, 1.0)
        self.scan = sorted(chans)

    @scpi("CONFigure[:VOLTage][:DC]")
    def _conf(self, raw: bytes) -> None:
        self._configure(raw)

    @scpi("MEASure[:VOLTage][:DC]?")
    def _meas(self, raw: bytes) -> str:
        self._configure(raw)
        return self._read(b"")

    @scpi("[SENSe:]VOLTage[:DC]:NPLC")
    def _nplc(self, raw: bytes) -> None:
        self._each(raw, lambda s, v: setattr(s, "nplc", number(v, 0.02, 200.0)))

    @scpi("[SENSe:]VOLTage[:DC]:NPLC?")
    def _nplc_q(self, raw: bytes) -> str:
        return self._query(raw, lambda s: f"{s.nplc:+.8E}")

    @scpi("[SENSe:]VOLTage[:DC]:RANGe")
    def _range(self, raw: bytes) -> None:
        def set_range(s: Setup, v: str) -> None:
            s.range, s.auto = auto_range(number(v, 0.0, 300.0, {"MIN": 0.1, "MAX": 300.0}), RANGES, 1.0), False
        self._each(raw, set_range)

    @scpi("[SENSe:]VOLTage[:DC]:RANGe?")
    def _range_q(self, raw: bytes) -> str:
        return self._query(raw, lambda s: f"{s.range:+.8E}")

    @scpi("[SENSe:]VOLTage[:DC]:RANGe:AUTO")
    def _range_auto(self, raw: bytes) -> None:
        self._each(raw, lambda s, v: setattr(s, "auto", boolean(v)))

    @scpi("[SENSe:]ZERO:AUTO")
    def _zero(self, raw: bytes) -> None:
        self._each(raw, lambda s, v: setattr(s, "azero", False if v.upper() == "ONCE" else boolean(v)))

    @scpi("[SENSe:]ZERO:AUTO?")
    def _zero_q(self, raw: bytes) -> str:
        return self._query(raw, lambda s: "1" if s.azero else "0")

    @scpi("ROUTe:CHANnel:DELay")
    def _delay(self, raw: bytes) -> None:
        def set_delay(s: Setup, v: str) -> None:
            s.delay, s.delay_auto = number(v, 0.0, 60.0), False
        self._each(raw, set_delay)

    @scpi("ROUTe:CHANnel:DELay?")
    def _delay_q(self, raw: bytes) -> str:
        return self._query(raw, lambda s: f"{s.delay:+.8E}")

    @scpi("ROUTe:CHANnel:DELay:AUTO")
    def _delay_auto(self, raw: bytes) -> None:
        def set_auto(s: Setup, v: str) -> None:
            s.delay_auto = boolean(v)
            s.delay = CHANNEL_DELAY_S if s.delay_auto else s.delay
        self._each(raw, set_auto)

    @scpi("ROUTe:SCAN")
    def _scan(self, raw: bytes) -> None:
        t = text(raw)
        self.scan = [] if t.replace(" ", "") == "(@)" else sorted(set(self._channels(t)))

    @scpi("ROUTe:SCAN?")
    def _scan_q(self, raw: bytes) -> bytes:
        return definite_block(("(@" + ",".join(str(c) for c in self.scan) + ")").encode())

    @scpi("ROUTe:SCAN:SIZE?")
    def _scan_size(self, raw: bytes) -> str:
        return str(len(self.scan))

    @scpi("TRIGger:COUNt")
    def _trig_count(self, raw: bytes) -> None:
        self.trig_count = int(number(text(raw), 1, 1_000_000, {"INF": 1_000_000, "INFINITY": 1_000_000}))

    @scpi("TRIGger:COUNt?")
    def _trig_count_q(self, raw: bytes) -> str:
        return f"{self.trig_count:+.8E}"

    @scpi("TRIGger:SOURce")
    def _trig_source(self, raw: bytes) -> None:
        t = text(raw).upper()
        names = {"IMM": "IMM", "IMMEDIATE": "IMM", "BUS": "BUS", "EXT": "EXT", "EXTERNAL": "EXT", "TIM": "TIM",
                 "TIMER": "TIM", "ALAR1": "ALAR1", "ALAR2": "ALAR2"}
        if t not in names:
            raise ScpiError(-224, "Illegal parameter value")
        self.trig_source = names[t]

    @scpi("TRIGger:SOURce?")
    def _trig_source_q(self, raw: bytes) -> str:
        return self.trig_source

    @scpi("TRIGger:TIMer")
    def _trig_timer(self, raw: bytes) -> None:
        self.trig_timer = number(text(raw), 0.0, 359_999.0)

    @scpi("FORMat:READing:CHANnel")
    def _fchan(self, raw: bytes) -> None:
        self.fields["CHAN"] = boolean(text(raw))

    @scpi("FORMat:READing:TIME")
    def _ftime(self, raw: bytes) -> None:
        self.fields["TIME"] = boolean(text(raw))

    @scpi("FORMat:READing:UNIT")
    def _funit(self, raw: bytes) -> None:
        self.fields["UNIT"] = boolean(text(raw))

    @scpi("FORMat:READing:ALARm")
    def _falarm(self, raw: bytes) -> None:
        self.fields["ALAR"] = boolean(text(raw))

    @scpi("FORMat:READing:CHANnel?")
    def _fchan_q(self, raw: bytes) -> str:
        return "1" if self.fields["CHAN"] else "0"

    # --- scanning -------------------------------------------------------------------------------------
    def channel_s(self, c: int) -> float:
        s = self.setup[c]
        return SWITCH_S[self.kind] + s.delay + reading_s(self.kind, s.nplc, self.line_hz, s.azero)

    def _sweeps(self, n: int) -> None:
        """n sweeps of the scan list, starting when what runs now is done; into reading memory."""
        per = np.array([self.channel_s(c) for c in self.scan])
        sweep = float(per.sum())
        start = self.run_in_background(n * sweep)
        if not self.initiated or self.trig_source == "IMM":
            self.scan_start = start
        gap = self.trig_timer if self.trig_source == "TIM" else 0.0
        self.busy_until += gap * (n - 1)
        values = self.world.read(self.name, [str(c) for c in self.scan], n)
        for j, c in enumerate(self.scan):
            s = self.setup[c]
            values[:, j] = overload(values[:, j], RANGES[-1] if s.auto else s.range)
        times = start + (sweep + gap) * np.arange(n)[:, None] + np.cumsum(per)[None, :]
        rows = np.column_stack([values.reshape(-1), np.tile(self.scan, n), times.reshape(-1)])
        self.stored = np.vstack([self.stored, rows])[-self.memory :]

    @scpi("INITiate[:IMMediate]")
    def _init(self, raw: bytes) -> None:
        if not self.scan:
            raise err(SETTINGS_CONFLICT, "no scan list")
        unconfigured = [c for c in self.scan if self.setup.get(c, Setup()).function != "VOLT:DC"]
        if unconfigured:
            raise err(SETTINGS_CONFLICT, f"channel {unconfigured[0]} not configured")
        self.wait_idle()
        self.stored = np.zeros((0, 3))  # INITiate clears reading memory
        self.initiated += 1
        if self.trig_source == "BUS":
            self.armed = self.trig_count
            return
        self._sweeps(self.trig_count)

    def bus_trigger(self) -> None:
        if not self.armed:
            raise ScpiError(-211, "Trigger ignored")
        self.armed -= 1
        self._sweeps(1)

    def abort(self) -> None:
        now = self.clock.now()
        super().abort()
        self.armed = 0
        self.stored = self.stored[self.stored[:, 2] <= now]

    def available(self) -> np.ndarray:
        """The readings memory holds now (those the scan has finished)."""
        return self.stored[self.stored[:, 2] <= self.clock.now() + 1e-12]

    def _format(self, rows: np.ndarray) -> str:
        parts = []
        for v, c, t in rows:
            item = f"{v:+.8E}" + (" VDC" if self.fields["UNIT"] else "")
            if self.fields["TIME"]:
                item += f",{t - self.scan_start:+.3F}"
            if self.fields["CHAN"]:
                item += f",{int(c)}"
            if self.fields["ALAR"]:
                item += ",0"
            parts.append(item)
        return ",".join(parts)

    def _take(self, n: int) -> np.ndarray:
        rows = self.available()[:n]
        self.stored = self.stored[len(rows) :]
        return rows

    @scpi("FETCh?")
    def _fetch(self, raw: bytes) -> str:
        if self.armed:
            raise ScpiError(-230, "Data corrupt or stale; waiting for *TRG")
        self.wait_idle()
        if not len(self.stored):
            raise ScpiError(-230, "Data corrupt or stale")
        return self._format(self.stored)

    @scpi("READ?")
    def _read(self, raw: bytes) -> str:
        self._init(b"")
        return self._fetch(b"")

    @scpi("R?")
    def _r(self, raw: bytes) -> bytes:
        n = int(number(text(raw), 1, self.memory)) if text(raw) else self.memory
        return definite_block(self._format(self._take(n)).encode())

    @scpi("DATA:REMove?")
    def _remove(self, raw: bytes) -> str:
        n = int(number(text(raw), 1, self.memory))
        if n > len(self.available()):
            raise ScpiError(-222, f"Data out of range; {len(self.available())} readings in memory")
        return self._format(self._take(n))

    @scpi("ABORt")
    def _abort(self, raw: bytes) -> None:
        self.abort()

    @scpi("DATA:POINts?")
    def _points(self, raw: bytes) -> str:
        return str(len(self.available()))


class Agilent34970A(DAQ970A):
    kind = "agilent34970a"
    idn = "HEWLETT-PACKARD,34970A,EMU00001,13-2-2"
    memory = 50_000
