"""Keysight DAQ970A / Agilent 34970A data acquisition units: multi-channel DC voltage scans.

pymeasure has no driver for either.  A read of N samples on k channels is two
transactions whatever N: `TRIG:COUN N`, then one `READ?` that runs N sweeps of the
scan list and returns all N*k readings (sweep by sweep; ASCII, the only format these
units offer).  The VISA timeout of the `READ?` comes from the timing model.

The instruments scan in ascending channel order, whatever order the scan list was
written in (programming reference, `ROUTe:SCAN`), so readings are never mapped by
position: `FORM:READ:CHAN ON` makes every reading carry its channel number
(`+1.23456789E-01,101,...`), and each one is placed by that number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_range

from hil.drivers.base import InstrumentError, ReplyError, SafeInstrument, dc_volt_range, strict_scan_list
from hil.drivers.ratings import Rating
from hil.drivers.timing import InstrumentTiming

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: channel numbers of three slots of 20- and 40-channel multiplexers
CHANNELS = [100 * s + c for s in (1, 2, 3) for c in range(1, 41)]

#: DC volts ranges of the internal DMM (100 mV to 300 V); multiplexer inputs are rated 300 V
_DCV = (0.1, 1.0, 10.0, 100.0, 300.0)
RATINGS_DAQ970A = {"DAQ970A": Rating("DAQ970A", _DCV, 300.0, source="DAQ970A/DAQ973A Programming Guide, CONFigure")}
RATINGS_34970A = {"34970A": Rating("34970A", _DCV, 300.0, source="34970A User's Guide, DC voltage ranges"),
                  "34972A": Rating("34972A", _DCV, 300.0, source="34970A/34972A User's Guide")}


@dataclass(frozen=True)
class DAQ970ATiming(InstrumentTiming):
    """DAQ970A / 34970A scans (user's guides): one sweep = every channel in turn.

    - integration `NPLC / line frequency` (0.02..200 PLC); these units have no line-frequency
      query, so the station's `line_hz` is used (50 Hz, the longer PLC, when not given);
    - autozero on (`*RST`): a zero measurement after every reading, 2 conversions per reading;
    - automatic channel delay for DC volts: 2 ms (the guides' automatic-delay table); relay
      switching per channel from the card's scan rate (DAQM901A 80 ch/s: 1/80 s less the delay);
    - ASCII readings with their channel: `+1.23456789E-01,101,` is 20 bytes; LAN about 1 MB/s.
    """

    switch_s: float = 1 / 80 - 0.002
    channel_delay_s: float = 0.002
    bytes_per_reading: float = 20.0

    def ascii_bytes_per_reading(self) -> float:
        return 20.0


@dataclass(frozen=True)
class Agilent34970ATiming(DAQ970ATiming):
    """34970A: as the DAQ970A, with the 34901A's 60 ch/s scan rate, over GPIB/RS-232 (about 500 kB/s assumed)."""

    switch_s: float = 1 / 60 - 0.002
    link_bytes_per_s: float = 5e5


class DAQ970A(SafeInstrument, SCPIMixin, Instrument):
    """Keysight DAQ970A: scan list, `TRIG:COUN N`, one `READ?` for all channels and all N."""

    #: readings the instrument memory holds
    memory_readings = 1_000_000
    has_outputs = False  # it only measures: nothing to make safe at cleanup
    timing_class: type[InstrumentTiming] = DAQ970ATiming

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
        self.timing: InstrumentTiming = self.timing_class()

    def configure(self) -> None:
        """Each reading followed by its channel number; no time, unit or alarm fields."""
        self.write("FORM:READ:CHAN ON;:FORM:READ:TIME OFF;:FORM:READ:UNIT OFF;:FORM:READ:ALAR OFF")
        self.raise_errors("format")

    def configure_reads(self, channels: list[str], v_max: float, nplc: float, autozero: bool = True) -> None:
        """DC volts on every channel (fixed range covering v_max), nplc, autozero, immediate trigger, scan list."""
        chans = [int(c) for c in channels]
        lst = strict_scan_list(chans, CHANNELS)
        rng = dc_volt_range(v_max)
        self.write(f"CONF:VOLT:DC {rng:g},{lst};:VOLT:DC:NPLC {nplc:g},{lst};:ZERO:AUTO {'ON' if autozero else 'OFF'},"
                   f"{lst};:TRIG:SOUR IMM")
        self.scan = chans
        self.raise_errors("configure_reads")
        self.channels = chans
        self.read_range = f"{rng:g} V"
        self.timing = self.timing.with_(nplc=nplc, autozero=autozero)  # no line-frequency query: the station's

    def read_voltages(self, channels: list[str], n: int) -> np.ndarray:
        """n sweeps of the scan list; returns `(n, k)` (V) in the order of `channels`, placed by channel number."""
        chans = [int(c) for c in channels]
        missing = set(chans) - set(self.channels)
        if missing:
            raise InstrumentError(f"{self.name}: channels {sorted(missing)} are not in the scan list")
        k = len(self.channels)
        strict_range(n * k, [1, self.memory_readings])
        self.sweeps = n
        with self.timeout_for(self.timing.estimate_read_s(n, k)):
            values = self.parse_scan(self.ask("READ?"), n)
        return self.refuse_overloads(values[:, [self.channels.index(c) for c in chans]], channels,
                                     getattr(self, "read_range", "present"))

    def parse_scan(self, reply: str, n: int) -> np.ndarray:
        """`reading,channel,...` of n sweeps -> `(n, k)` in `self.channels` order, each reading by its channel."""
        fields = [f for f in reply.strip().split(",") if f.strip()]
        k = len(self.channels)
        if len(fields) != 2 * n * k:
            raise ReplyError(f"{self.name}: expected {n * k} readings with their channels, got {len(fields)} fields")
        try:
            readings = np.array([float(f) for f in fields[0::2]]).reshape(n, k)
            numbers = np.array([int(float(f)) for f in fields[1::2]]).reshape(n, k)
        except ValueError:
            raise ReplyError(f"{self.name}: unreadable scan data {reply[:60]!r}") from None
        column = {c: j for j, c in enumerate(self.channels)}
        out = np.empty((n, k))
        for s in range(n):
            if sorted(numbers[s]) != sorted(self.channels):
                raise ReplyError(f"{self.name}: sweep {s + 1} read channels {numbers[s].tolist()}, the scan list "
                                 f"is {self.channels}")
            out[s, [column[int(c)] for c in numbers[s]]] = readings[s]
        return out

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
    timing_class = Agilent34970ATiming

    def __init__(self, adapter, name: str = "Agilent 34970A", **kwargs) -> None:
        super().__init__(adapter, name, **kwargs)
