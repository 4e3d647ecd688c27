"""Keithley 2400 SourceMeter: pymeasure's class, wrapped with strict limits and buffered reads.

Buffered reads use the `TRAC` buffer with `FORM:DATA REAL,32` (binary, `#0` header).
The 2400 manual (section 18, TRACe subsystem) gives `:TRACe:POINts <n>` as 1 to 2500
(pymeasure's 1024 is its generic buffer validator, not the instrument), and the
trigger count cannot exceed the buffer either, so a read of N samples is done in
chunks of at most 2500: two transactions per chunk (one write that arms the buffer
and triggers, one binary query), i.e. 2 for every N <= 2500.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2400 as _PymeasureKeithley2400
from pymeasure.instruments.validators import strict_range

from hil.drivers.base import parse_ascii, read_binary
from hil.drivers.ratings import Rating
from hil.drivers.scpi_smu import SingleChannelSMU
from hil.drivers.timing import InstrumentTiming

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: points the 2400 TRAC buffer holds per fill (manual: `:TRACe:POINts` 1 to 2500)
TRACE_CHUNK = 2500

#: 2400 manual, specifications: ±210 V (ranges 0.2-200 V, 105 % full scale), ±1.05 A up to 21 V, 105 mA to 210 V
RATINGS = {
    "2400": Rating("2400", (0.2, 2.0, 20.0, 200.0), 210.0,
                   (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0), ((21.0, 1.05), (210.0, 0.105)),
                   source="2400 Series SourceMeter User's Manual, specifications"),
    "2401": Rating("2401", (0.2, 2.0, 20.0), 21.0, (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0), ((21.0, 1.05),),
                   source="2400 Series SourceMeter User's Manual, specifications"),
}


@dataclass(frozen=True)
class Keithley2400Timing(InstrumentTiming):
    """2400 (manual, source-delay-measure cycle): each reading is a triggered SDM cycle.

    - trigger latency 100 us per reading (SDM figure), trigger delay 0 (`*RST`);
    - auto source delay 1 ms per SDM cycle (SDM figure), kept in `overhead_s` with an assumed
      0.2 ms of A/D set-up and buffer store;
    - autozero on (`*RST`): reference and zero conversions besides the signal, 3 conversions
      per reading (the worst case the Keithley SMU manuals describe);
    - GPIB/RS-232 link: about 500 kB/s assumed for GPIB; REAL,32 readings are 4 bytes, `#0` and LF.
    """

    autozero_conversions: float = 3.0
    trigger_delay_s: float = 100e-6
    overhead_s: float = 1.2e-3
    link_bytes_per_s: float = 5e5
    header_bytes: int = 3
    chunk: int | None = TRACE_CHUNK

    def ascii_bytes_per_reading(self) -> float:
        return 14.0  # "+1.234567E-01," (FORM:ELEM VOLT)


class Keithley2400(SingleChannelSMU, _PymeasureKeithley2400):
    """Keithley 2400: one channel (`""`), as a voltage source or as a voltmeter."""

    source_function = ":SOUR:FUNC VOLT;:SOUR:VOLT:MODE FIXED"

    source_voltage_range = Instrument.setting(
        ":SOUR:VOLT:RANG %g",
        """Set the voltage source range (float, V, 0.2..210).""",
        validator=strict_range,
        values=[0.2, 210.0],
    )
    compliance_current = Instrument.setting(
        ":SENS:CURR:PROT %g",
        """Set the current compliance (float, A, strictly within the station's compliance).""",
        validator=strict_range,
        values=[1e-9, 1.05],
        dynamic=True,
    )

    def __init__(self, adapter, name: str = "Keithley 2400", binary: bool = True, **kwargs) -> None:
        super().__init__(adapter, name, **kwargs)
        self._init_safe()
        self.binary = binary
        self.timing: InstrumentTiming = Keithley2400Timing(bytes_per_reading=4.0 if binary else 14.0)

    def reset_data_format(self) -> None:
        """Nothing here: pymeasure calls this from __init__, and hil-ep sends nothing before configure()."""

    def configure(self) -> None:
        """Set the data format of buffered reads: voltage only, REAL32 little-endian or ASCII."""
        fmt = ":FORM:DATA REAL,32;:FORM:BORD SWAP" if self.binary else ":FORM:DATA ASC"
        self.write(f":FORM:ELEM VOLT;{fmt}")
        self.raise_errors("format")

    def configure_reads(self, channels: list[str], v_max: float, nplc: float, autozero: bool = True) -> None:
        """Voltmeter: source 0 A with |V| compliance v_max, measure V; autozero as the station says."""
        self.write(f':SOUR:FUNC CURR;:SOUR:CURR 0;:SENS:FUNC "VOLT";:SENS:VOLT:PROT {v_max:g};'
                   f':SYST:AZER {"ON" if autozero else "OFF"}')
        self.voltage_nplc = nplc
        self.timing = self.timing.with_(nplc=nplc, autozero=autozero, line_hz=self.line_frequency())
        self.read_range = f"{v_max:g} V compliance"
        self.output_enabled = True
        self.raise_errors("configure_reads")

    def read_voltages(self, channels: list[str], n: int) -> np.ndarray:
        """n readings through the TRAC buffer in chunks of <= 2500; returns `(n, 1)` (V); overloads refused."""
        strict_range(n, [1, 1_000_000])
        out = []
        for k in range(math.ceil(n / TRACE_CHUNK)):
            c = min(TRACE_CHUNK, n - k * TRACE_CHUNK)
            self.write(f":TRAC:CLE;:TRAC:POIN {c};:TRAC:FEED SENS;:TRAC:FEED:CONT NEXT;:TRIG:COUN {c};:INIT;*WAI")
            with self.timeout_for(self.timing.estimate_read_s(c, 1)):  # *WAI holds the reply until the fill ends
                self.write(":TRAC:DATA?")
                out.append(read_binary(self, "<f4", c) if self.binary else parse_ascii(self.read(), c, self.name))
        return self.refuse_overloads(np.concatenate(out).reshape(n, 1), [""], getattr(self, "read_range", "present"))
