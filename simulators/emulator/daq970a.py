"""Keysight DAQ970A / Agilent 34970A: scan lists of DC-volt channels on multiplexer cards.

From the DAQ970A programming reference: `CONFigure:VOLTage:DC [range],(@list)` and
`[SENSe:]VOLTage:DC:NPLC n,(@list)` set the function of channels; `ROUTe:SCAN (@list)`
sets the scan list (channels in ascending order, as the instrument scans them);
`TRIGger:COUNt n` the sweeps per `INITiate`; `READ?` = `INITiate` + `FETCh?`, the
readings of every sweep in scan order, as ASCII `+1.23456789E-01` separated by
commas; `FORMat:READing:CHANnel|TIME|UNIT|ALARm ON|OFF` add fields to each reading.
A scan of a channel not configured for DC volts, or an empty scan list, is refused
with -221 "Settings conflict".  Reading memory holds 1 000 000 readings (50 000 on
the 34970A); a `TRIG:COUN` whose sweeps would not fit gives -222 at `INIT`.
"""

from __future__ import annotations

from hil.simulators.emulator.errors import SETTINGS_CONFLICT, ScpiError, err
from hil.simulators.emulator.params import boolean, channel_list, number, split_params, text
from hil.simulators.emulator.scpi import Instrument, scpi

SLOTS = (1, 2, 3)
CHANNELS = {100 * s + c for s in SLOTS for c in range(1, 41)}


class DAQ970A(Instrument):
    kind = "daq970a"
    idn = "Keysight Technologies,DAQ970A,EMU00001,A.02.02-01.00-02.01-00.02-03-01"
    queue_size = 20
    memory = 1_000_000
    plc_s = 0.02

    def reset(self) -> None:
        self.function: dict[int, tuple[str, float, float]] = {}  # channel -> (function, range, nplc)
        self.scan: list[int] = []
        self.trig_count = 1
        self.trig_source = "IMM"
        self.fields = {"CHAN": False, "TIME": False, "UNIT": False, "ALAR": False}
        self.memory_readings: list[tuple[float, int]] = []
        self.initiated = 0

    def _channels(self, raw: str) -> list[int]:
        chans = channel_list(raw)
        bad = [c for c in chans if c not in CHANNELS]
        if bad:
            raise ScpiError(-222, f"Data out of range; no channel {bad[0]}")
        return chans

    @scpi("CONFigure[:VOLTage][:DC]")
    def _conf(self, raw: bytes) -> None:
        params = split_params(text(raw))
        if not params or not params[-1].startswith("("):
            raise ScpiError(-109, "Missing parameter; channel list")
        chans = self._channels(params[-1])
        rng = number(params[0], 0.1, 300.0, {"AUTO": 10.0, "DEF": 10.0}) if len(params) > 1 else 10.0
        for c in chans:
            self.function[c] = ("VOLT:DC", rng, self.function.get(c, ("", 0, 1.0))[2])
        self.scan = sorted(chans)  # CONFigure also sets the scan list (programming reference)

    @scpi("[SENSe:]VOLTage[:DC]:NPLC")
    def _nplc(self, raw: bytes) -> None:
        params = split_params(text(raw))
        if len(params) != 2:
            raise ScpiError(-109, "Missing parameter")
        nplc = number(params[0], 0.02, 200.0)
        for c in self._channels(params[1]):
            fn, rng, _ = self.function.get(c, ("VOLT:DC", 10.0, 1.0))
            self.function[c] = (fn, rng, nplc)

    @scpi("ROUTe:SCAN")
    def _scan(self, raw: bytes) -> None:
        t = text(raw)
        self.scan = [] if t.replace(" ", "") == "(@)" else sorted(self._channels(t))

    @scpi("ROUTe:SCAN:SIZE?")
    def _scan_size(self, raw: bytes) -> str:
        return str(len(self.scan))

    @scpi("TRIGger:COUNt")
    def _trig_count(self, raw: bytes) -> None:
        self.trig_count = int(number(text(raw), 1, 1_000_000, {"INF": 1_000_000}))

    @scpi("TRIGger:COUNt?")
    def _trig_count_q(self, raw: bytes) -> str:
        return f"{self.trig_count:+.9E}"

    @scpi("TRIGger:SOURce")
    def _trig_source(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("IMM", "IMMEDIATE", "BUS", "EXT", "EXTERNAL", "TIM", "TIMER", "ALAR1", "ALAR2"):
            raise ScpiError(-224, "Illegal parameter value")
        self.trig_source = t[:3]

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

    @scpi("INITiate")
    def _init(self, raw: bytes) -> None:
        if not self.scan:
            raise err(SETTINGS_CONFLICT, "no scan list")
        unconfigured = [c for c in self.scan if self.function.get(c, ("",))[0] != "VOLT:DC"]
        if unconfigured:
            raise err(SETTINGS_CONFLICT, f"channel {unconfigured[0]} not configured")
        if self.trig_count * len(self.scan) > self.memory:
            raise ScpiError(-222, "Data out of range; reading memory")
        values = self.world.read(self.name, [str(c) for c in self.scan], self.trig_count)
        out = []
        for row in values:
            for c, v in zip(self.scan, row):
                rng = self.function[c][1]
                out.append((float(v) if abs(v) <= 1.2 * rng else 9.9e37, c))  # overload reads +9.9E+37
        self.memory_readings = out
        self.initiated += 1

    @scpi("FETCh?")
    def _fetch(self, raw: bytes) -> str:
        if not self.memory_readings:
            raise ScpiError(-230, "Data corrupt or stale")
        parts = []
        for v, c in self.memory_readings:
            item = f"{v:+.9E}" + (" VDC" if self.fields["UNIT"] else "")
            if self.fields["TIME"]:
                item += ",+0.000000E+00"
            if self.fields["CHAN"]:
                item += f",{c}"
            if self.fields["ALAR"]:
                item += ",0"
            parts.append(item)
        return ",".join(parts)

    @scpi("READ?")
    def _read(self, raw: bytes) -> str | None:
        self._init(b"")
        return self._fetch(b"")

    @scpi("ABORt")
    def _abort(self, raw: bytes) -> None:
        """A scan here runs to completion within its command: nothing is in progress."""

    @scpi("DATA:POINts?")
    def _points(self, raw: bytes) -> str:
        return str(len(self.memory_readings))


class Agilent34970A(DAQ970A):
    kind = "agilent34970a"
    idn = "HEWLETT-PACKARD,34970A,EMU00001,13-2-2"
    memory = 50_000
