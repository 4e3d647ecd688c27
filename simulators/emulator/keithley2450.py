"""Keithley 2450 SourceMeter (SCPI command set), from the 2450 Reference Manual.

- One measure function: `[SENSe:]FUNCtion "VOLTage"|"CURRent"`; NPLC, range and
  `:AZERo[:STATe]` per function; `[SENSe:]COUNt` readings per request.
- Limits: `SOURce:VOLTage:ILIMit` (sourcing volts), `SOURce:CURRent:VLIMit`; source
  delays `SOURce:<fn>:DELay` (and `:AUTO`).
- `READ? ["buf"[,elements]]` and `MEASure:<fn>? [...]` make COUNt readings into a
  buffer (defbuffer1 by default) and return the last; `FETCh?` the latest stored;
  `TRACe:TRIGger ["buf"]` makes COUNt readings into the buffer;
  `TRIGger:LOAD "SimpleLoop",count[,delay[,"buf"]]` then `INITiate` runs them in the
  background (`TRACe:ACTual?` grows while it runs; `ABORt` stops; `*WAI` waits).
- Reading buffers (defbuffer1, `TRACe:MAKE`, `TRACe:DATA?` ...): `keithley_buffers.py`.
- Errors read `code,"message;type;time"` (`SYSTem:ERRor?`).
"""

from __future__ import annotations

import numpy as np

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.keithley_buffers import ReadingBuffers
from hil.simulators.emulator.params import boolean, number, split_params, text, unquote
from hil.simulators.emulator.readings import Acquisition, TraceDataFormat
from hil.simulators.emulator.scpi import scpi
from hil.simulators.emulator.smu import SourceMeter, function

UNITS = {"VOLT": "Volt DC", "CURR": "Amp DC"}


class Keithley2450(ReadingBuffers, TraceDataFormat, SourceMeter):
    kind = "keithley2450"
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,EMU0001,1.7.12b"
    no_error = '0,"No error;0;0 0"'
    error_format = '{code:d},"{message};1;2024/01/01 00:00:00.000"'
    trip_error = (5074, "Output tripped; compliance, output off")
    v_ranges = (0.02, 0.2, 2.0, 20.0, 200.0)
    i_ranges = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)

    def reset(self) -> None:
        super().reset()
        self.sense = ["CURR"]
        self.azero = {"VOLT": True, "CURR": True}
        self.count = 1
        self.fmt, self.swapped = "ASC", False
        self.reset_buffers()
        self.loop: tuple[int, float, str] | None = None

    # --- readings -----------------------------------------------------------------------------
    def trigger_s(self) -> float:
        self.autozero = self.azero[self.sense[0]]
        return super().trigger_s()

    def _rows(self, n: int, start: float) -> np.ndarray:
        m = self.measured(n)
        rel = start + self.trigger_s() * np.arange(1, n + 1)
        return np.column_stack([m[self.sense[0]], np.full(n, self.level[self.func]), rel])

    def take(self, n: int, name: str | None) -> np.ndarray:
        """n readings into a buffer, now (the instrument is busy meanwhile); the rows."""
        key, buf = self.buffer(name)
        self.wait_idle()
        rows = self._rows(n, self.clock.now())
        self.work(n * self.trigger_s())
        buf.add(rows, UNITS[self.sense[0]])
        return rows

    def _reply(self, raw: bytes, n_new: int | None) -> bytes | str:
        params = split_params(text(raw))
        if n_new is not None:
            rows = self.take(n_new, params[0] if params else None)[-1:]
        else:
            key, buf = self.buffer(params[0] if params else None)
            if not len(buf.rows):
                raise ScpiError(-230, "Data corrupt or stale; buffer empty")
            rows = buf.rows[-1:]
        return self.encode_rows(rows, [UNITS[self.sense[0]]], params[1:])

    # --- measure -----------------------------------------------------------------------------
    @scpi("READ?")
    def _read(self, raw: bytes) -> bytes | str:
        return self._reply(raw, self.count)

    @scpi("FETCh?")
    def _fetch(self, raw: bytes) -> bytes | str:
        self.wait_idle()
        return self._reply(raw, None)

    @scpi("MEASure:VOLTage[:DC]?")
    def _meas_v(self, raw: bytes) -> bytes | str:
        self.sense = ["VOLT"]
        return self._reply(raw, self.count)

    @scpi("MEASure:CURRent[:DC]?")
    def _meas_i(self, raw: bytes) -> bytes | str:
        self.sense = ["CURR"]
        return self._reply(raw, self.count)

    @scpi("[SENSe:]FUNCtion[:ON]")
    def _sense(self, raw: bytes) -> None:
        self.sense = [function(unquote(text(raw)).encode())]

    @scpi("[SENSe:]FUNCtion[:ON]?")
    def _sense_q(self, raw: bytes) -> str:
        return f"{self.sense[0]}:DC"

    @scpi("[SENSe:]COUNt")
    def _count(self, raw: bytes) -> None:
        self.count = int(number(text(raw), 1, 300_000))

    @scpi("[SENSe:]COUNt?")
    def _count_q(self, raw: bytes) -> str:
        return str(self.count)

    @scpi("[SENSe:]VOLTage[:DC]:AZERo[:STATe]")
    def _vazero(self, raw: bytes) -> None:
        self.azero["VOLT"] = boolean(text(raw))

    @scpi("[SENSe:]CURRent[:DC]:AZERo[:STATe]")
    def _iazero(self, raw: bytes) -> None:
        self.azero["CURR"] = boolean(text(raw))

    @scpi("[SENSe:]VOLTage[:DC]:AZERo[:STATe]?")
    def _vazero_q(self, raw: bytes) -> str:
        return "1" if self.azero["VOLT"] else "0"

    @scpi("[SENSe:]CURRent[:DC]:AZERo[:STATe]?")
    def _iazero_q(self, raw: bytes) -> str:
        return "1" if self.azero["CURR"] else "0"

    # --- limits and delays -----------------------------------------------------------------------
    @scpi("SOURce:VOLTage:ILIMit[:LEVel]")
    def _ilim(self, raw: bytes) -> None:
        self.i_limit = number(text(raw), 1e-9, 1.05)

    @scpi("SOURce:VOLTage:ILIMit[:LEVel]?")
    def _ilim_q(self, raw: bytes) -> str:
        return f"{self.i_limit:.6E}"

    @scpi("SOURce:CURRent:VLIMit[:LEVel]")
    def _vlim(self, raw: bytes) -> None:
        self.v_limit = number(text(raw), 0.02, 210.0)

    @scpi("SOURce:CURRent:VLIMit[:LEVel]?")
    def _vlim_q(self, raw: bytes) -> str:
        return f"{self.v_limit:.6E}"

    @scpi("SOURce:VOLTage:DELay")
    def _vdelay(self, raw: bytes) -> None:
        self.source_delay, self.source_delay_auto = number(text(raw), 0.0, 10_000.0), False

    @scpi("SOURce:CURRent:DELay")
    def _idelay(self, raw: bytes) -> None:
        self.source_delay, self.source_delay_auto = number(text(raw), 0.0, 10_000.0), False

    @scpi("SOURce:VOLTage:DELay?")
    def _vdelay_q(self, raw: bytes) -> str:
        return f"{self.source_delay:.6E}"

    @scpi("SOURce:CURRent:DELay?")
    def _idelay_q(self, raw: bytes) -> str:
        return f"{self.source_delay:.6E}"

    @scpi("SOURce:VOLTage:DELay:AUTO")
    def _vdelay_auto(self, raw: bytes) -> None:
        self.source_delay_auto = boolean(text(raw))

    @scpi("SOURce:CURRent:DELay:AUTO")
    def _idelay_auto(self, raw: bytes) -> None:
        self.source_delay_auto = boolean(text(raw))

    @scpi("SOURce:VOLTage:DELay:AUTO?")
    def _vdelay_auto_q(self, raw: bytes) -> str:
        return "1" if self.source_delay_auto else "0"

    @scpi("SOURce:CURRent:DELay:AUTO?")
    def _idelay_auto_q(self, raw: bytes) -> str:
        return "1" if self.source_delay_auto else "0"

    # --- trigger model ----------------------------------------------------------------------------
    @scpi("TRIGger:LOAD")
    def _load(self, raw: bytes) -> None:
        params = split_params(text(raw))
        if not params or unquote(params[0]) != "SimpleLoop":
            raise ScpiError(-224, "Illegal parameter value; trigger model")
        count = int(number(params[1], 1, 268_000_000)) if len(params) > 1 else 1
        delay = number(params[2], 0.0, 10_000.0) if len(params) > 2 else 0.0
        key, _ = self.buffer(params[3] if len(params) > 3 else None)
        self.loop = (count, delay, key)

    @scpi("INITiate[:IMMediate]")
    def _init(self, raw: bytes) -> None:
        if self.loop is None:
            raise ScpiError(-221, "Settings conflict; no trigger model loaded")
        count, delay, key = self.loop
        self.wait_idle()
        per = self.trigger_s() + delay
        start = self.run_in_background(count * per)
        rows = self._rows(count, start)
        rows[:, 2] = start + per * np.arange(1, count + 1)
        self.pending = (Acquisition(rows, start, per), key, UNITS[self.sense[0]])

    @scpi("TRACe:TRIGger")
    def _ttrig(self, raw: bytes) -> None:
        self.take(self.count, text(raw) or None)

    @scpi("STATus:PRESet")
    def _stat_preset(self, raw: bytes) -> None:
        """The event enable registers back to their defaults (nothing enabled here)."""
