"""Keithley 2450 SourceMeter (SCPI): pymeasure's class, wrapped with strict limits and TRAC reads.

An N-sample read is two transactions whatever N: one write that sizes and clears
`defbuffer1`, sets the count and fills it (`TRAC:TRIG`), and one binary query of the
readings (`FORM:DATA SRE`, single-precision little-endian).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2450 as _PymeasureKeithley2450
from pymeasure.instruments.validators import strict_range

from hil.drivers.base import parse_ascii, read_binary
from hil.drivers.ratings import Rating
from hil.drivers.scpi_smu import SingleChannelSMU
from hil.drivers.timing import InstrumentTiming

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: readings defbuffer1 can be sized to on a 2450 (standard reading buffer)
BUFFER_MAX = 100_000

#: 2450 reference manual: voltage ranges 20 mV-200 V (±210 V at 105 %), current 10 nA-1 A,
#: ±1.05 A up to 21 V and ±105 mA up to 210 V
RATINGS = {
    "2450": Rating("2450", (0.02, 0.2, 2.0, 20.0, 200.0), 210.0,
                   (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0), ((21.0, 1.05), (210.0, 0.105)),
                   source="Model 2450 Reference Manual, specifications"),
}


@dataclass(frozen=True)
class Keithley2450Timing(InstrumentTiming):
    """2450 (reference manual): NPLC at the line frequency (0.01 PLC = 0.167 ms at 60 Hz).

    - autozero on (default): reference and zero measurements besides the signal when they have
      expired, up to 3 conversions per reading (bounded here by 3);
    - source autodelay (1-50 ms by current range) applies to the first source output and when
      its magnitude changes: the voltmeter's 0 A source does not change within a read, so 0;
    - an assumed 0.1 ms per reading of trigger-model and buffer overhead; LAN/USB about 1 MB/s.
    """

    autozero_conversions: float = 3.0
    overhead_s: float = 1e-4


class Keithley2450(SingleChannelSMU, _PymeasureKeithley2450):
    """Keithley 2450: one channel (`""`), as a voltage source or a voltmeter."""

    min_source_range = 0.02

    source_voltage_range = Instrument.setting(
        ":SOUR:VOLT:RANG %g",
        """Set the voltage source range (float, V, 0.02..200).""",
        validator=strict_range,
        values=[0.02, 200.0],
    )
    compliance_current = Instrument.setting(
        ":SOUR:VOLT:ILIM %g",
        """Set the current limit of the voltage source (float, A, strictly within the station's compliance).""",
        validator=strict_range,
        values=[1e-9, 1.05],
        dynamic=True,
    )

    def __init__(self, adapter, name: str = "Keithley 2450", binary: bool = True, **kwargs) -> None:
        super().__init__(adapter, name, **kwargs)
        self._init_safe()
        self.binary = binary
        self.timing: InstrumentTiming = Keithley2450Timing(bytes_per_reading=4.0 if binary else 15.0)

    def configure(self) -> None:
        """Set the format of buffered reads: single-precision little-endian, or ASCII."""
        self.write(":FORM:DATA SRE;:FORM:BORD SWAP" if self.binary else ":FORM:DATA ASC")
        self.raise_errors("format")

    def configure_reads(self, channels: list[str], v_max: float, nplc: float, autozero: bool = True) -> None:
        """Voltmeter: source 0 A with a |V| limit of v_max, measure V; autozero as the station says."""
        self.write(f':SOUR:FUNC CURR;:SOUR:CURR 0;:SOUR:CURR:VLIM {v_max:g};:SENS:FUNC "VOLT";'
                   f':SENS:VOLT:AZER {"ON" if autozero else "OFF"}')
        self.voltage_nplc = nplc
        self.timing = self.timing.with_(nplc=nplc, autozero=autozero, line_hz=self.line_frequency())
        self.read_range = "auto (|V| limit " + f"{v_max:g} V)"
        self.output_enabled = True
        self.raise_errors("configure_reads")

    def read_voltages(self, channels: list[str], n: int) -> np.ndarray:
        """n readings into defbuffer1, fetched at once; returns `(n, 1)` (V); overloads refused."""
        strict_range(n, [1, BUFFER_MAX])
        self.write(f':TRAC:POIN {max(n, 10)},"defbuffer1";:TRAC:CLE "defbuffer1";:COUN {n};'
                   ':TRAC:TRIG "defbuffer1";*WAI')
        with self.timeout_for(self.timing.estimate_read_s(n, 1)):  # *WAI holds the reply until the fill ends
            self.write(f':TRAC:DATA? 1,{n},"defbuffer1",READ')
            values = read_binary(self, "<f4", n) if self.binary else parse_ascii(self.read(), n, self.name)
        return self.refuse_overloads(values.reshape(n, 1), [""], getattr(self, "read_range", "present"))
