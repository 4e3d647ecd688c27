"""How long an instrument takes: the timing model every read timeout and `hil train --estimate` use.

One `InstrumentTiming` per instrument kind lives beside its driver (`keithley_2400.py`
defines `Keithley2400Timing`, ...), with the manual's numbers as class defaults and
a docstring saying where each comes from.  The model is pure data: a planner builds
it from a station file alone (`timing_for(kind, spec)`), with no instrument attached,
and a driver replaces its fields (`nplc`, `line_hz`, `autozero`, ...) with what it
configured or queried, so that the same formula gives both the estimate and the timeout.

The time of one N-sample read of k channels (one buffer fill, or one scan of N sweeps):

    commands   transactions(N, k) * command_s                     (writes and queries)
    sweeps     N * trigger_delay_s                                (one trigger per sweep/reading)
    readings   N * k * (switch_s + channel_delay_s + conversion_s + overhead_s)
    source     fills * source_delay_s                             (SMU: settling before a fill)
    transfer   (N * k * bytes_per_reading + header) / link_bytes_per_s

with `conversion_s = nplc / line_hz * (autozero_conversions if autozero else 1)`.

A transaction's VISA timeout is `base_s + (1 + TIMEOUT_MARGIN) * modelled_s`: the
station's `timeout_s` (link latency and an ordinary command's reply) plus the modelled
duration and half of it again, which covers a line frequency 2 % off nominal, the
occasional extra autozero conversions, and host scheduling; it is never a fixed guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

#: relative margin added to the modelled duration of a transaction to get its timeout
TIMEOUT_MARGIN = 0.5
#: mains frequency assumed when neither the station nor the instrument says (the longer PLC)
DEFAULT_LINE_HZ = 50.0


@dataclass(frozen=True)
class InstrumentTiming:
    """Timing of one instrument's N-sample reads (seconds, from its manual); subclass per kind."""

    #: mains frequency (Hz): queried from the instrument (`SYST:LFR?`, `localnode.linefreq`) when it can say
    line_hz: float = DEFAULT_LINE_HZ
    #: integration time per conversion, in power-line cycles
    nplc: float = 1.0
    #: autozero on: each reading needs `autozero_conversions` A/D conversions instead of one
    autozero: bool = True
    #: conversions per reading with autozero on (DMM: signal + zero = 2)
    autozero_conversions: float = 2.0
    #: per-reading time beyond integration: A/D housekeeping, math, storing into the buffer
    overhead_s: float = 0.0
    #: relay operate time per channel of a scan (0 for an instrument without a multiplexer)
    switch_s: float = 0.0
    #: settling per channel after its relay closes (channel delay)
    channel_delay_s: float = 0.0
    #: per sweep (scan) or per reading trigger: trigger delay plus trigger latency
    trigger_delay_s: float = 0.0
    #: SMU: source settling before the first reading of a fill (the source level does not change within it)
    source_delay_s: float = 0.0
    #: bytes per reading on the link (binary float32: 4; ASCII: the characters and the separator)
    bytes_per_reading: float = 4.0
    #: bytes of a reply besides the readings (block header, terminator)
    header_bytes: int = 12
    #: link throughput (bytes/s): LAN/USB about 1 MB/s, a serial line baud/10
    link_bytes_per_s: float = 1.0e6
    #: one command's parse and round trip on the instrument (s)
    command_s: float = 0.002
    #: readings one buffer fill holds (the 2400's 2500); None: one fill for any N
    chunk: int | None = None
    #: extra notes on where the numbers come from (shown by `describe()`)
    sources: tuple[str, ...] = field(default=(), compare=False)

    # --- the parts -------------------------------------------------------------------------
    def conversion_s(self) -> float:
        """Integration of one reading: NPLC at the line frequency, times the autozero conversions."""
        return self.nplc / self.line_hz * (self.autozero_conversions if self.autozero else 1.0)

    def reading_s(self) -> float:
        """One reading of one channel, switching and settling included."""
        return self.switch_s + self.channel_delay_s + self.conversion_s() + self.overhead_s

    def fills(self, n_samples: int, n_channels: int = 1) -> int:
        """Buffer fills an N-sample read of k channels takes (chunks of `chunk` readings)."""
        total = n_samples * n_channels
        return 1 if self.chunk is None else max(1, math.ceil(total / self.chunk))

    def transactions(self, n_samples: int, n_channels: int = 1) -> int:
        """Writes and queries of one N-sample read: two per fill unless a driver says otherwise."""
        return 2 * self.fills(n_samples, n_channels)

    def transfer_s(self, n_readings: int, fills: int = 1) -> float:
        """Moving n_readings over the link, with one reply header per fill."""
        return (n_readings * self.bytes_per_reading + fills * self.header_bytes) / self.link_bytes_per_s

    def measure_s(self, n_samples: int, n_channels: int = 1) -> float:
        """Time the instrument spends measuring (no commands, no transfer)."""
        n_samples, n_channels = int(n_samples), int(n_channels)
        return (n_samples * self.trigger_delay_s + n_samples * n_channels * self.reading_s()
                + self.fills(n_samples, n_channels) * self.source_delay_s)

    # --- what planners and drivers call ------------------------------------------------------
    def estimate_read_s(self, n_samples: int, n_channels: int = 1) -> float:
        """Modelled wall time of one N-sample read of k channels: commands, measuring and transfer (s)."""
        if n_samples < 1 or n_channels < 1:
            raise ValueError(f"a read needs n_samples >= 1 and n_channels >= 1, got {n_samples}, {n_channels}")
        fills = self.fills(n_samples, n_channels)
        return (self.transactions(n_samples, n_channels) * self.command_s + self.measure_s(n_samples, n_channels)
                + self.transfer_s(n_samples * n_channels, fills))

    def estimate_write_s(self, n_bytes: int = 0) -> float:
        """One command of n_bytes (levels, a conductance block): parse plus transfer (s)."""
        return self.command_s + n_bytes / self.link_bytes_per_s

    def ascii_bytes_per_reading(self) -> float:
        """Bytes of one ASCII reading: `+1.234567E-01` and a comma (15 with 7 digits)."""
        return 15.0

    def with_(self, **changes: Any) -> InstrumentTiming:
        """A copy with some fields replaced (what a driver configured or queried)."""
        return replace(self, **changes)

    def describe(self) -> str:
        return (f"{type(self).__name__}: {self.nplc:g} PLC at {self.line_hz:g} Hz, autozero "
                f"{'on' if self.autozero else 'off'} -> {self.conversion_s() * 1e3:.3g} ms/conversion, "
                f"{self.reading_s() * 1e3:.3g} ms/reading")


def timeout_s(modelled_s: float, base_s: float) -> float:
    """The VISA timeout of a transaction expected to last modelled_s: base plus the model and its margin."""
    return base_s + (1.0 + TIMEOUT_MARGIN) * max(0.0, modelled_s)


def timing_classes() -> dict[str, type[InstrumentTiming]]:
    """Instrument kind (as a station names it) -> its timing model."""
    from hil.drivers.hilep_conductance_board import ConductanceBoardTiming
    from hil.drivers.keithley_707b import Keithley707BTiming
    from hil.drivers.keithley_2400 import Keithley2400Timing
    from hil.drivers.keithley_2450 import Keithley2450Timing
    from hil.drivers.keithley_2600 import Keithley2600Timing
    from hil.drivers.keithley_daq6510 import DAQ6510Timing
    from hil.drivers.keysight_daq970a import Agilent34970ATiming, DAQ970ATiming

    return {
        "keithley2400": Keithley2400Timing,
        "keithley2450": Keithley2450Timing,
        "keithley2600": Keithley2600Timing,
        "daq970a": DAQ970ATiming,
        "agilent34970a": Agilent34970ATiming,
        "daq6510": DAQ6510Timing,
        "keithley707b": Keithley707BTiming,
        "conductance_board": ConductanceBoardTiming,
    }


def timing_for(kind: str, spec: Any = None) -> InstrumentTiming:
    """The timing model of an instrument kind, with a station's `InstrumentSpec` applied; no I/O.

    From the spec: `nplc`, `line_hz` (None: 50 Hz until the instrument is asked), `transfer`
    (ASCII readings are longer) and, on a serial address (`ASRL...`), `baud_rate` (115200 if not given).
    """
    cls = timing_classes()[kind]
    model = cls()
    if spec is None:
        return model
    changes: dict[str, Any] = {"nplc": float(spec.nplc), "autozero": bool(getattr(spec, "autozero", True))}
    if getattr(spec, "line_hz", None):
        changes["line_hz"] = float(spec.line_hz)
    if getattr(spec, "transfer", "binary") == "ascii":
        changes["bytes_per_reading"] = model.ascii_bytes_per_reading()
    if str(getattr(spec, "address", "")).upper().startswith("ASRL"):  # a serial line, 8N1: ten bits per byte
        changes["link_bytes_per_s"] = (getattr(spec, "baud_rate", None) or 115_200) / 10.0
    return model.with_(**changes)
