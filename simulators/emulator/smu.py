"""Keithley 2400 and 2450 SourceMeters (SCPI), one channel each.

State per the reference manuals: source function (VOLT or CURR), levels, range,
compliance (2400 `:SENS:CURR:PROT`, `:SENS:VOLT:PROT`; 2450 `:SOUR:VOLT:ILIM`,
`:SOUR:CURR:VLIM`), output on/off (the 2400's output-off state is NORMal: 0 V),
NPLC, data format, the reading buffer and the trigger count.  A reading is the
voltage at the terminals: the source level when sourcing volts, else the node
voltage the station wires the SMU to.  A level beyond the source range gives
-222; `:INIT` with the output off gives the 2400's +803 "Output disabled".
`trip()` is a compliance trip: output off, level 0, an error queued.
"""

from __future__ import annotations

import numpy as np

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.params import boolean, number, split_params, text, unquote
from hil.simulators.emulator.readings import TraceDataFormat
from hil.simulators.emulator.scpi import Instrument, scpi


class _SCPISourceMeter(Instrument):
    v_ranges = (0.2, 2.0, 20.0, 200.0)

    def reset(self) -> None:
        self.func = "VOLT"
        self.level_v = 0.0
        self.level_i = 0.0
        self.v_range = 20.0
        self.i_limit = 1.05e-4
        self.v_limit = 20.0
        self.output = False
        self.nplc = 1.0
        self.sense = "CURR"
        self.count = 1
        self.buffer: list[float] = []

    def source_level(self, channel: str) -> float:
        return self.level_v if (self.output and self.func == "VOLT") else 0.0

    def outputs_on(self) -> dict[str, bool]:
        return {"": self.output}

    def levels(self) -> dict[str, float]:
        return {"": self.level_v}

    def trip(self) -> None:
        with self.lock:
            self.output = False
            self.level_v = 0.0
            self.push_error(*self.trip_error)

    def _reading(self, n: int) -> np.ndarray:
        if not self.output:
            raise ScpiError(*self.output_off_error)
        if self.func == "VOLT":
            return np.full(n, self.level_v)
        return self.world.read(self.name, [""], n)[:, 0]

    # --- source ---------------------------------------------------------------------------------
    @scpi("SOURce:FUNCtion[:MODE]")
    def _func(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("VOLT", "VOLTAGE", "CURR", "CURRENT"):
            raise ScpiError(-224, "Illegal parameter value")
        self.func = t[:4]

    @scpi("SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def _volt(self, raw: bytes) -> None:
        self.level_v = number(text(raw), -self.v_range * 1.05, self.v_range * 1.05)

    @scpi("SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]?")
    def _volt_q(self, raw: bytes) -> str:
        return f"{self.level_v:+.6E}"

    @scpi("SOURce:VOLTage:RANGe")
    def _vrange(self, raw: bytes) -> None:
        v = number(text(raw), 0.0, self.v_ranges[-1] * 1.05)
        self.v_range = next(r for r in self.v_ranges if r * 1.05 >= v)

    @scpi("SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]")
    def _curr(self, raw: bytes) -> None:
        self.level_i = number(text(raw), -1.05, 1.05)

    @scpi("OUTPut[:STATe]")
    def _outp(self, raw: bytes) -> None:
        self.output = boolean(text(raw))

    @scpi("OUTPut[:STATe]?")
    def _outp_q(self, raw: bytes) -> str:
        return "1" if self.output else "0"

    @scpi("[SENSe:]FUNCtion[:ON]")
    def _sense(self, raw: bytes) -> None:
        t = unquote(split_params(text(raw))[0]).upper()
        if t.startswith("VOLT"):
            self.sense = "VOLT"
        elif t.startswith("CURR"):
            self.sense = "CURR"
        else:
            raise ScpiError(-224, "Illegal parameter value")

    @scpi("[SENSe:]VOLTage[:DC]:NPLCycles")
    def _nplc(self, raw: bytes) -> None:
        self.nplc = number(text(raw), 0.01, 10.0)


class Keithley2400(_SCPISourceMeter):
    """2400: `TRAC` buffer of up to 2500 readings, `FORM:DATA REAL,32` sends `#0` + float32 (BORD SWAP: LE)."""

    kind = "keithley2400"
    idn = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,EMU0001,C32   Oct  4 2010 14:20:11/A02  /S/K"
    no_error = '0,"No error"'
    error_format = '{code:d},"{message}"'
    trip_error = (-222, "Data out of range; compliance trip, output off")
    output_off_error = (803, "Output disabled")
    buffer_max = 2500

    def reset(self) -> None:
        super().reset()
        self.points = 100
        self.feed = "SENS"
        self.feed_control = "NEV"
        self.fmt = "ASC"
        self.swapped = False
        self.elements = ["VOLT", "CURR", "RES", "TIME", "STAT"]

    @scpi("SOURce:VOLTage:MODE")
    def _mode(self, raw: bytes) -> None:
        if text(raw).upper() not in ("FIX", "FIXED", "LIST", "SWE", "SWEEP"):
            raise ScpiError(-224, "Illegal parameter value")

    @scpi("[SENSe:]CURRent[:DC]:PROTection[:LEVel]")
    def _iprot(self, raw: bytes) -> None:
        self.i_limit = number(text(raw), 1e-9, 1.05)

    @scpi("[SENSe:]VOLTage[:DC]:PROTection[:LEVel]")
    def _vprot(self, raw: bytes) -> None:
        self.v_limit = number(text(raw), 0.2, 210.0)

    @scpi("FORMat:ELEMents[:SENSe1]")
    def _elem(self, raw: bytes) -> None:
        elems = [e.strip().upper()[:4] for e in split_params(text(raw))]
        if not elems or any(e not in ("VOLT", "CURR", "RES", "TIME", "STAT") for e in elems):
            raise ScpiError(-224, "Illegal parameter value")
        self.elements = elems

    @scpi("FORMat[:DATA]")
    def _fmt(self, raw: bytes) -> None:
        params = [p.upper() for p in split_params(text(raw))]
        if params[0] in ("ASC", "ASCII"):
            self.fmt = "ASC"
        elif params[0] in ("REAL", "SRE", "SREAL") and (params[0] != "REAL" or params[1:] in ([], ["32"])):
            self.fmt = "REAL"
        else:
            raise ScpiError(-224, "Illegal parameter value")

    @scpi("FORMat:BORDer")
    def _bord(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("NORM", "NORMAL", "SWAP", "SWAPPED"):
            raise ScpiError(-224, "Illegal parameter value")
        self.swapped = t.startswith("SWAP")

    @scpi("TRACe:CLEar")
    def _tclear(self, raw: bytes) -> None:
        self.buffer = []

    @scpi("TRACe:POINts")
    def _tpoints(self, raw: bytes) -> None:
        self.points = int(number(text(raw), 1, self.buffer_max))

    @scpi("TRACe:POINts?")
    def _tpoints_q(self, raw: bytes) -> str:
        return str(self.points)

    @scpi("TRACe:FEED")
    def _tfeed(self, raw: bytes) -> None:
        self.feed = text(raw).upper()[:4]

    @scpi("TRACe:FEED:CONTrol")
    def _tfeedc(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("NEXT", "NEV", "NEVER"):
            raise ScpiError(-224, "Illegal parameter value")
        self.feed_control = t[:4]

    @scpi("TRIGger:COUNt")
    def _tcount(self, raw: bytes) -> None:
        self.count = int(number(text(raw), 1, 2500))

    @scpi("INITiate[:IMMediate]")
    def _init(self, raw: bytes) -> None:
        readings = self._reading(self.count)
        if self.feed_control == "NEXT":
            room = self.points - len(self.buffer)
            self.buffer.extend(float(v) for v in readings[: max(room, 0)])
            if len(self.buffer) >= self.points:
                self.feed_control = "NEV"
        self.last = readings

    @scpi("TRACe:DATA?")
    def _tdata(self, raw: bytes) -> bytes | str:
        values = np.array(self.buffer)
        if self.fmt == "ASC":
            return ",".join(f"{v:+.6E}" for v in values)
        return b"#0" + values.astype("<f4" if self.swapped else ">f4").tobytes()


class Keithley2450(TraceDataFormat, _SCPISourceMeter):
    """2450: `defbuffer1` sized by `:TRAC:POIN`, `:COUN`, `:TRAC:TRIG`, `:TRAC:DATA? s,e,"buf",READ`."""

    kind = "keithley2450"
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,EMU0001,1.7.12b"
    no_error = '0,"No error;0;0 0"'
    error_format = '{code:d},"{message};1;2024/01/01 00:00:00.000"'
    trip_error = (5074, "Output tripped; compliance, output off")
    output_off_error = (-221, "Settings conflict; output off")
    v_ranges = (0.02, 0.2, 2.0, 20.0, 200.0)

    def reset(self) -> None:
        super().reset()
        self.capacity = 100_000
        self.fmt = "ASC"
        self.swapped = False

    @scpi("SOURce:VOLTage:ILIMit[:LEVel]")
    def _ilim(self, raw: bytes) -> None:
        self.i_limit = number(text(raw), 1e-9, 1.05)

    @scpi("SOURce:CURRent:VLIMit[:LEVel]")
    def _vlim(self, raw: bytes) -> None:
        self.v_limit = number(text(raw), 0.02, 210.0)

    def _buffer(self, name: str) -> None:
        if unquote(name).lower() not in ("defbuffer1", "defbuffer2"):
            raise ScpiError(-224, f"Illegal parameter value; no buffer {name}")

    @scpi("TRACe:POINts")
    def _tpoints(self, raw: bytes) -> None:
        params = split_params(text(raw))
        self.capacity = int(number(params[0], 10, 11_000_000))
        if len(params) > 1:
            self._buffer(params[1])
        self.buffer = []

    @scpi("TRACe:CLEar")
    def _tclear(self, raw: bytes) -> None:
        if text(raw):
            self._buffer(text(raw))
        self.buffer = []

    @scpi("[SENSe:]COUNt")
    def _count(self, raw: bytes) -> None:
        self.count = int(number(text(raw), 1, 300_000))

    @scpi("TRACe:TRIGger")
    def _ttrig(self, raw: bytes) -> None:
        if text(raw):
            self._buffer(text(raw))
        readings = self._reading(self.count)
        self.buffer = (self.buffer + [float(v) for v in readings])[-self.capacity :]

    @scpi("READ?")
    def _read(self, raw: bytes) -> str:
        return f"{self._reading(1)[0]:+.9E}"

    @scpi("TRACe:DATA?")
    def _tdata(self, raw: bytes) -> bytes | str:
        params = split_params(text(raw))
        start, end = int(number(params[0], 1)), int(number(params[1], 1))
        if len(params) > 2:
            self._buffer(params[2])
        if end > len(self.buffer) or start > end:
            raise ScpiError(-222, "Data out of range; buffer index")
        values = np.array(self.buffer[start - 1 : end])
        return self.encode_readings(values)
