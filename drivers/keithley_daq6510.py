"""Keithley DAQ6510 (SCPI): pymeasure's class, wrapped with a binary scan read.

A read of N samples on k channels is two transactions whatever N: one write that
sizes `defbuffer1` to the N*k readings of the scan (`:TRAC:POIN`, which also clears it:
a default buffer holds far fewer readings than a long scan makes), sets the scan count
to N and runs it, and one binary query of the N*k readings (`FORM:DATA SRE`,
single-precision little-endian).

A binary reply carries readings only (the channel element is ASCII-only), so readings
are never placed in the station's order: the scan is created in ascending channel
order (the order a scanning DMM reads a channel list in), and each reading is placed
by its channel's position in that scan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import KeithleyDAQ6510 as _PymeasureDAQ6510
from pymeasure.instruments.validators import strict_range

from hil.drivers.base import InstrumentError, SafeInstrument, dc_volt_range, parse_ascii, read_binary, strict_scan_list
from hil.drivers.ratings import Rating
from hil.drivers.timing import InstrumentTiming

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

CHANNELS = [100 * s + c for s in (1, 2) for c in range(1, 61)]

#: DC volts ranges 100 mV to 1000 V at the front terminals; the 7700-series cards are rated 300 V
RATINGS = {"DAQ6510": Rating("DAQ6510", (0.1, 1.0, 10.0, 100.0, 1000.0), 300.0,
                             source="DAQ6510 Reference Manual (DC volts ranges); 7700 card rating")}


@dataclass(frozen=True)
class DAQ6510Timing(InstrumentTiming):
    """DAQ6510 scans (reference manual): `:SENS:VOLT:NPLC` at the line frequency (`:SYST:LFR?`).

    - autozero on (default): a reference/zero update per reading, 2 conversions per reading;
    - relay switching and settling per channel from the 7700 card's scan rate (80 ch/s: 12.5 ms);
    - an assumed 0.1 ms per reading of trigger-model and buffer overhead; LAN/USB about 1 MB/s.
    """

    switch_s: float = 1 / 80
    overhead_s: float = 1e-4


class KeithleyDAQ6510(SafeInstrument, _PymeasureDAQ6510):
    """Keithley DAQ6510 with a 7700-series multiplexer: DC volts scan into defbuffer1."""

    buffer_readings = 7_000_000
    line_query = ":SYST:LFR?"
    has_outputs = False  # it only measures: nothing to make safe at cleanup

    scan_count = Instrument.setting(
        ":ROUT:SCAN:COUN:SCAN %d",
        """Set the number of scans per run (int, 1..100000).""",
        validator=strict_range,
        values=[1, 100_000],
    )

    def __init__(self, adapter, name: str = "Keithley DAQ6510", binary: bool = True, **kwargs) -> None:
        super().__init__(adapter, name, **kwargs)
        self._init_safe()
        self.binary = binary
        self.channels: list[int] = []
        self.timing: InstrumentTiming = DAQ6510Timing(bytes_per_reading=4.0 if binary else 15.0)

    def configure(self) -> None:
        """Set the format of buffered reads: single-precision little-endian, or ASCII."""
        self.write(":FORM:DATA SRE;:FORM:BORD SWAP" if self.binary else ":FORM:DATA ASC")
        self.raise_errors("format")

    def configure_reads(self, channels: list[str], v_max: float, nplc: float, autozero: bool = True) -> None:
        """DC volts with nplc on every channel, and a scan of them in ascending channel order."""
        chans = sorted(int(c) for c in channels)
        lst = strict_scan_list(chans, CHANNELS)
        rng = dc_volt_range(v_max)
        self.write(f':SENS:FUNC "VOLT:DC",{lst};:SENS:VOLT:RANG {rng:g},{lst};:SENS:VOLT:NPLC {nplc:g},{lst};'
                   f':SENS:VOLT:AZER {"ON" if autozero else "OFF"},{lst};:ROUT:SCAN:CRE {lst}')
        self.raise_errors("configure_reads")
        self.channels = chans
        self.read_range = f"{rng:g} V"
        self.timing = self.timing.with_(nplc=nplc, autozero=autozero, line_hz=self.line_frequency())

    def read_voltages(self, channels: list[str], n: int) -> np.ndarray:
        """n scans; returns `(n, k)` (V) in the order of `channels`; overloads refused."""
        chans = [int(c) for c in channels]
        missing = set(chans) - set(self.channels)
        if missing:
            raise InstrumentError(f"{self.name}: channels {sorted(missing)} are not in the scan")
        k = len(self.channels)
        strict_range(n * k, [1, self.buffer_readings])
        self.write(f':TRAC:POIN {max(n * k, 10)},"defbuffer1";:TRAC:CLE "defbuffer1";:ROUT:SCAN:COUN:SCAN {int(n)};'
                   ":INIT;*WAI")
        with self.timeout_for(self.timing.estimate_read_s(n, k)):  # *WAI holds the reply until the scan ends
            self.write(f':TRAC:DATA? 1,{n * k},"defbuffer1",READ')
            if self.binary:
                values = read_binary(self, "<f4", n * k)
            else:
                values = parse_ascii(self.read(), n * k, self.name)
        index = [self.channels.index(c) for c in chans]
        return self.refuse_overloads(values.reshape(n, k)[:, index], channels, getattr(self, "read_range", "present"))

    def output_off_commands(self) -> list[str]:
        return [":ABOR"]

    def shutdown(self) -> None:
        """Abort a scan in progress (write only)."""
        with self.short_timeout(self.cleanup_timeout_s):
            self._try(":ABOR")
        self.isShutdown = True
