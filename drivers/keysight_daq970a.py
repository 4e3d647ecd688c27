"""Keysight DAQ970A / Agilent 34970A data acquisition units: multi-channel DC voltage scans.

pymeasure has no driver for either.  A read of N samples on k channels is two
transactions whatever N: `TRIG:COUN N`, then one `READ?` that runs N sweeps of the
scan list and returns all N*k readings (sweep by sweep; ASCII, the only format these
units offer).  The VISA timeout is raised to cover the expected duration.
"""

from __future__ import annotations

import logging

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_range

from hil.drivers.base import InstrumentError, SafeInstrument, dc_volt_range, parse_ascii, strict_scan_list

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: channel numbers of three slots of 20- and 40-channel multiplexers
CHANNELS = [100 * s + c for s in (1, 2, 3) for c in range(1, 41)]


class DAQ970A(SafeInstrument, SCPIMixin, Instrument):
    """Keysight DAQ970A: scan list, `TRIG:COUN N`, one `READ?` for all channels and all N."""

    #: readings the instrument memory holds
    memory_readings = 1_000_000
    #: seconds per power-line cycle (50 Hz mains) used to scale the read timeout
    plc_s = 0.02

    scan = Instrument.setting(
        "ROUT:SCAN %s",
        """Set the channels of one sweep (list of int, e.g. [101, 102] -> (@101,102)).""",
        validator=strict_scan_list,
        values=CHANNELS,
    )
    sweeps = Instrument.setting(
        "TRIG:COUN %d",
        """Set the number of sweeps per READ? (int, 1..50000).""",
        validator=strict_range,
        values=[1, 50_000],
    )

    def __init__(self, adapter, name: str = "Keysight DAQ970A", **kwargs) -> None:
        kwargs.pop("binary", None)  # ASCII only
        super().__init__(adapter, name, **kwargs)
        self._init_safe()
        self.channels: list[int] = []
        self.nplc = 1.0

    def configure(self) -> None:
        """Readings without channel, time, unit or alarm fields."""
        self.write("FORM:READ:CHAN OFF;:FORM:READ:TIME OFF;:FORM:READ:UNIT OFF;:FORM:READ:ALAR OFF")
        self.raise_errors("format")

    def configure_reads(self, channels: list[str], v_max: float, nplc: float) -> None:
        """DC volts on every channel (fixed range covering v_max), nplc, immediate trigger, scan list."""
        chans = [int(c) for c in channels]
        lst = strict_scan_list(chans, CHANNELS)
        rng = dc_volt_range(v_max)
        self.write(f"CONF:VOLT:DC {rng:g},{lst};:VOLT:DC:NPLC {nplc:g},{lst};:TRIG:SOUR IMM")
        self.scan = chans
        self.raise_errors("configure_reads")
        self.channels = chans
        self.nplc = nplc

    def read_voltages(self, channels: list[str], n: int) -> np.ndarray:
        """n sweeps of the scan list; returns `(n, k)` (V) in the order of `channels`."""
        chans = [int(c) for c in channels]
        missing = set(chans) - set(self.channels)
        if missing:
            raise InstrumentError(f"{self.name}: channels {sorted(missing)} are not in the scan list")
        k = len(self.channels)
        strict_range(n * k, [1, self.memory_readings])
        self.sweeps = n
        with self.timeout_for(n * k * (self.nplc * self.plc_s + 0.002)):
            values = parse_ascii(self.ask("READ?"), n * k, self.name).reshape(n, k)
        index = [self.channels.index(c) for c in chans]
        return values[:, index]

    def shutdown(self) -> None:
        """Nothing sources; abort a scan in progress (write only)."""
        with self.short_timeout(self.cleanup_timeout_s):
            self._try("ABOR")
        super().shutdown()

    def output_off_commands(self) -> list[str]:
        return ["ABOR"]


class Agilent34970A(DAQ970A):
    """Agilent 34970A: the same scan commands as the DAQ970A, 50 000 readings of memory."""

    memory_readings = 50_000

    def __init__(self, adapter, name: str = "Agilent 34970A", **kwargs) -> None:
        super().__init__(adapter, name, **kwargs)
