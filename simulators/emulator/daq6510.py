"""Keithley DAQ6510 with 7700-series multiplexers (SCPI command set of its reference manual).

`[:SENSe]:FUNCtion "VOLT:DC",(@list)`, `:VOLTage:RANGe r,(@list)` and `:VOLTage:NPLCycles n,(@list)`
configure channels; `:ROUTe:SCAN:CREate (@list)` makes the scan; `:ROUTe:SCAN:COUNt:SCAN n`
the scans per run; `:INITiate` runs it into `defbuffer1` (cleared by `:TRACe:CLEar`);
`:TRACe:DATA? start,end,"defbuffer1",READ` returns the readings in `:FORMat:DATA`
(ASCii, or SREal / REAL as definite-length blocks, byte order from `:FORMat:BORDer`).
Errors read `-113,"Undefined header;1;2024/01/01 00:00:00.000"`.
"""

from __future__ import annotations

import numpy as np

from hil.simulators.emulator.errors import SETTINGS_CONFLICT, ScpiError, err
from hil.simulators.emulator.params import channel_list, number, split_params, text, unquote
from hil.simulators.emulator.readings import TraceDataFormat
from hil.simulators.emulator.scpi import Instrument, scpi

CHANNELS = {100 * s + c for s in (1, 2) for c in range(1, 61)}


class KeithleyDAQ6510(TraceDataFormat, Instrument):
    kind = "daq6510"
    idn = "KEITHLEY INSTRUMENTS,MODEL DAQ6510,EMU0001,1.7.12b"
    queue_size = 20
    no_error = '0,"No error;0;0 0"'
    error_format = '{code:d},"{message};1;2024/01/01 00:00:00.000"'
    capacity = 7_000_000

    def reset(self) -> None:
        self.function: dict[int, str] = {}
        self.scan: list[int] = []
        self.scan_count = 1
        self.buffer: list[float] = []
        self.fmt = "ASC"
        self.swapped = False

    def _channels(self, raw: str) -> list[int]:
        chans = channel_list(raw)
        bad = [c for c in chans if c not in CHANNELS]
        if bad:
            raise ScpiError(-222, f"Data out of range; no channel {bad[0]}")
        return chans

    @scpi("[SENSe:]FUNCtion[:ON]")
    def _func(self, raw: bytes) -> None:
        params = split_params(text(raw))
        fn = unquote(params[0]).upper()
        if fn not in ("VOLT:DC", "VOLTAGE:DC", "VOLT", "VOLTAGE"):
            raise ScpiError(-224, "Illegal parameter value")
        for c in self._channels(params[1]) if len(params) > 1 else []:
            self.function[c] = "VOLT:DC"

    @scpi("[SENSe:]VOLTage[:DC]:RANGe[:UPPer]")
    def _range(self, raw: bytes) -> None:
        params = split_params(text(raw))
        number(params[0], 0.1, 1000.0)
        if len(params) > 1:
            self._channels(params[1])

    @scpi("[SENSe:]VOLTage[:DC]:NPLCycles")
    def _nplc(self, raw: bytes) -> None:
        params = split_params(text(raw))
        number(params[0], 0.0005, 15.0)
        if len(params) > 1:
            self._channels(params[1])

    @scpi("ROUTe:SCAN:CREate")
    def _create(self, raw: bytes) -> None:
        self.scan = self._channels(text(raw))

    @scpi("ROUTe:SCAN:COUNt:SCAN")
    def _count(self, raw: bytes) -> None:
        self.scan_count = int(number(text(raw), 1, 100_000))

    @scpi("TRACe:CLEar")
    def _clear(self, raw: bytes) -> None:
        self.buffer = []

    @scpi("INITiate[:IMMediate]")
    def _init(self, raw: bytes) -> None:
        if not self.scan:
            raise err(SETTINGS_CONFLICT, "no scan")
        missing = [c for c in self.scan if c not in self.function]
        if missing:
            raise err(SETTINGS_CONFLICT, f"channel {missing[0]} has no function")
        if len(self.buffer) + self.scan_count * len(self.scan) > self.capacity:
            raise ScpiError(-222, "Data out of range; buffer")
        values = self.world.read(self.name, [str(c) for c in self.scan], self.scan_count)
        self.buffer.extend(float(v) for v in values.reshape(-1))

    @scpi("ABORt")
    def _abort(self, raw: bytes) -> None:
        """Nothing runs in the background here."""

    @scpi("TRACe:ACTual?")
    def _actual(self, raw: bytes) -> str:
        return str(len(self.buffer))

    @scpi("TRACe:DATA?")
    def _data(self, raw: bytes) -> bytes | str:
        params = split_params(text(raw))
        start, end = int(number(params[0], 1)), int(number(params[1], 1))
        if end > len(self.buffer) or start > end:
            raise ScpiError(-222, "Data out of range; buffer index")
        values = np.array(self.buffer[start - 1 : end])
        return self.encode_readings(values)
