"""Reading buffers of Keithley's TSP-generation instruments in SCPI mode (2450, DAQ6510 reference manuals).

defbuffer1 and defbuffer2 hold 100 000 readings each; `TRACe:MAKE "name",size` makes
another, `TRACe:DELete` removes it, `TRACe:POINts size[,"buf"]` (10..) resizes and
clears, `TRACe:CLEar`, `TRACe:ACTual[:STARt|:END]?`, `TRACe:FILL:MODE CONTinuous|ONCE`
(continuous: the oldest readings are overwritten), `TRACe:DATA? start,end[,"buf"[,elements]]`
with elements READing, SOURce (2450) or CHANnel (DAQ6510), RELative and UNIT (ASCII only),
`TRACe:STATistics:AVERage|MAXimum|MINimum|STDDev|PK2Pk? ["buf"]`.  A buffer that does
not exist is -224; an index past the readings is -222.  Readings a background
measurement (`INITiate`) is still taking join their buffer when it ends (`TRACe:ACTual?`
counts them as they come).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.params import number, split_params, text, unquote
from hil.simulators.emulator.readings import Acquisition
from hil.simulators.emulator.scpi import scpi


class Buffer:
    """A reading buffer: rows of (reading, source value, relative time), and the unit of each."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.fill_once = capacity, False
        self.rows, self.units = np.zeros((0, 3)), []

    def add(self, rows: np.ndarray, unit: str) -> None:
        if self.fill_once:
            rows = rows[: max(self.capacity - len(self.rows), 0)]
        self.rows = np.vstack([self.rows, rows])[-self.capacity :]
        self.units = (self.units + [unit] * len(rows))[-self.capacity :]

    def clear(self) -> None:
        self.rows, self.units = np.zeros((0, 3)), []


class ReadingBuffers:
    """Mixed in before `Instrument`; `reset()` calls `reset_buffers()`.  `column1` names the second element."""

    column1 = "SOUR"
    memory = 7_000_000
    clock: Any
    fmt: str
    wait_idle: Any
    encode_readings: Any

    def reset_buffers(self) -> None:
        self.buffers = {"defbuffer1": Buffer(100_000), "defbuffer2": Buffer(100_000)}
        self.pending: tuple[Acquisition, str, str] | None = None  # running in the background: into buffer

    def buffer(self, name: str | None) -> tuple[str, Buffer]:
        key = unquote(name or '"defbuffer1"')
        if key not in self.buffers:
            raise ScpiError(-224, f"Illegal parameter value; buffer {key} not found")
        self._sync()
        return key, self.buffers[key]

    def _sync(self) -> None:
        if self.pending is not None and self.pending[0].end <= self.clock.now():
            acq, key, unit = self.pending
            self.pending = None
            self.buffers[key].add(acq.rows, unit)

    def abort(self) -> None:
        super().abort()  # type: ignore[misc]
        if self.pending is not None:
            acq, key, unit = self.pending
            acq.stop(self.clock.now())
            self.pending = None
            self.buffers[key].add(acq.rows, unit)

    def encode_rows(self, rows: np.ndarray, units: list[str], elements: list[str]) -> str | bytes:
        names = {"READ": 0, "READING": 0, self.column1: 1, {"SOUR": "SOURCE", "CHAN": "CHANNEL"}[self.column1]: 1,
                 "REL": 2, "RELATIVE": 2, "UNIT": 3}
        cols = [names.get(e.upper()) for e in elements] or [0]
        if None in cols or (self.fmt != "ASC" and 3 in cols):
            raise ScpiError(-224, "Illegal parameter value; buffer element")
        if self.fmt != "ASC":
            return self.encode_readings(rows[:, cols].reshape(-1))
        out = []
        for row, unit in zip(rows, units):
            out.extend(unit if c == 3 else f"{int(row[c])}" if c == 1 and self.column1 == "CHAN" else f"{row[c]:.9E}"
                       for c in cols)
        return ",".join(out)

    # --- buffers ------------------------------------------------------------------------------------
    @scpi("TRACe:MAKE")
    def _make(self, raw: bytes) -> None:
        params = split_params(text(raw))
        if len(params) < 2:
            raise ScpiError(-109, "Missing parameter")
        name = unquote(params[0])
        if name in self.buffers:
            raise ScpiError(-224, f"Illegal parameter value; buffer {name} exists")
        self.buffers[name] = Buffer(int(number(params[1], 10, self.memory)))

    @scpi("TRACe:DELete")
    def _delete(self, raw: bytes) -> None:
        key, _ = self.buffer(text(raw))
        if key.startswith("defbuffer"):
            raise ScpiError(-224, f"Illegal parameter value; {key} cannot be deleted")
        del self.buffers[key]

    @scpi("TRACe:POINts")
    def _tpoints(self, raw: bytes) -> None:
        params = split_params(text(raw))
        _, buf = self.buffer(params[1] if len(params) > 1 else None)
        buf.capacity = int(number(params[0], 10, self.memory))
        buf.clear()

    @scpi("TRACe:POINts?")
    def _tpoints_q(self, raw: bytes) -> str:
        return str(self.buffer(text(raw) or None)[1].capacity)

    @scpi("TRACe:ACTual?")
    def _actual(self, raw: bytes) -> str:
        key, buf = self.buffer(text(raw) or None)
        running = self.pending[0].done(self.clock.now()) if self.pending and self.pending[1] == key else 0
        return str(min(len(buf.rows) + running, buf.capacity))

    @scpi("TRACe:ACTual:STARt?")
    def _actual_start(self, raw: bytes) -> str:
        return "1" if len(self.buffer(text(raw) or None)[1].rows) else "0"

    @scpi("TRACe:ACTual:END?")
    def _actual_end(self, raw: bytes) -> str:
        return str(len(self.buffer(text(raw) or None)[1].rows))

    @scpi("TRACe:CLEar")
    def _tclear(self, raw: bytes) -> None:
        self.buffer(text(raw) or None)[1].clear()

    @scpi("TRACe:FILL:MODE")
    def _fill(self, raw: bytes) -> None:
        params = split_params(text(raw))
        mode = params[0].upper()
        if mode not in ("CONT", "CONTINUOUS", "ONCE"):
            raise ScpiError(-224, "Illegal parameter value")
        self.buffer(params[1] if len(params) > 1 else None)[1].fill_once = mode == "ONCE"

    @scpi("TRACe:DATA?")
    def _tdata(self, raw: bytes) -> bytes | str:
        params = split_params(text(raw))
        if len(params) < 2:
            raise ScpiError(-109, "Missing parameter; start and end index")
        self.wait_idle()
        start, end = int(number(params[0], 1)), int(number(params[1], 1))
        _, buf = self.buffer(params[2] if len(params) > 2 else None)
        if end > len(buf.rows) or start > end:
            raise ScpiError(-222, f"Data out of range; buffer holds {len(buf.rows)} readings")
        return self.encode_rows(buf.rows[start - 1 : end], buf.units[start - 1 : end], params[3:])

    def _stat(self, raw: bytes, fn: object) -> str:
        _, buf = self.buffer(text(raw) or None)
        if not len(buf.rows):
            return "9.9E+37"
        return f"{fn(buf.rows[:, 0]):.9E}"  # type: ignore[operator]

    @scpi("TRACe:STATistics:AVERage?")
    def _avg(self, raw: bytes) -> str:
        return self._stat(raw, np.mean)

    @scpi("TRACe:STATistics:MAXimum?")
    def _max(self, raw: bytes) -> str:
        return self._stat(raw, np.max)

    @scpi("TRACe:STATistics:MINimum?")
    def _min(self, raw: bytes) -> str:
        return self._stat(raw, np.min)

    @scpi("TRACe:STATistics:STDDev?")
    def _std(self, raw: bytes) -> str:
        return self._stat(raw, lambda a: np.std(a, ddof=1) if len(a) > 1 else 0.0)

    @scpi("TRACe:STATistics:PK2Pk?")
    def _pk2pk(self, raw: bytes) -> str:
        return self._stat(raw, np.ptp)

