"""Keithley 2600B series SourceMeters (2601B, 2602B, 2611B, 2612B, 2635B, 2636B), TSP.

Written fresh (pymeasure's `keithley2600.py` predates `ChannelCreator` and uses
`truncated_range`).  An N-sample read is one TSP line that fills `nvbuffer1` with N
readings on every channel asked for and prints them with `printbuffer`, as REAL32
little-endian binary: one transaction whatever N.

Source ranges depend on the model (`*IDN?`, read by `identify()`): the 2601B/2602B
source up to 40 V on 0.1/1/6/40 V ranges, the 2611B/2612B/2635B/2636B up to 200 V on
0.2/2/20/200 V ranges (2600B reference manual, "Available ranges").  Nothing is
sourced before the model is known.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pymeasure.instruments import Channel, Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from hil.drivers.base import InstrumentError, SafeInstrument, parse_ascii, ramp_steps, read_binary
from hil.drivers.ratings import Rating, model_rating
from hil.drivers.timing import InstrumentTiming
from hil.errors import ConfigError

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: readings one nvbuffer holds on the 2600B
BUFFER_MAX = 60_000

_SOURCE = "Series 2600B Reference Manual: available ranges, I-source/V-source operating boundaries"
_I_LOW = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0)
#: 2601B/2602B: 0.1/1/6/40 V (101 % full scale), 3.03 A up to 6 V and 1.01 A up to 40 V;
#: 2611B/2612B/2635B/2636B: 0.2/2/20/200 V, 1.515 A up to 20 V and 101 mA up to 200 V
RATINGS = {
    **{m: Rating(m, (0.1, 1.0, 6.0, 40.0), 40.4, (*_I_LOW, 3.0), ((6.06, 3.03), (40.4, 1.01)), source=_SOURCE)
       for m in ("2601B", "2602B")},
    **{m: Rating(m, (0.2, 2.0, 20.0, 200.0), 202.0, (*_I_LOW, 1.5), ((20.2, 1.515), (202.0, 0.101)), source=_SOURCE)
       for m in ("2611B", "2612B")},
    **{m: Rating(m, (0.2, 2.0, 20.0, 200.0), 202.0, (1e-9, 1e-8, *_I_LOW, 1.5), ((20.2, 1.515), (202.0, 0.101)),
                 source=_SOURCE) for m in ("2635B", "2636B")},
}


@dataclass(frozen=True)
class Keithley2600Timing(InstrumentTiming):
    """2600B (reference manual): `smuX.measure.nplc` at `localnode.linefreq`.

    - autozero AUTO (default): when the reference measurements have expired, two more A/D
      conversions (reference and zero) per reading, bounded here by 3 conversions;
    - one TSP line per read (the script, then `printbuffer`): 1 transaction;
    - an assumed 0.1 ms per reading of script and buffer overhead; REAL32 `#0` blocks.
    """

    autozero_conversions: float = 3.0
    overhead_s: float = 1e-4
    header_bytes: int = 3

    def transactions(self, n_samples: int, n_channels: int = 1) -> int:
        return 1

    def ascii_bytes_per_reading(self) -> float:
        return 15.0  # format.asciiprecision = 7, comma-separated


class SMU(Channel):
    """One SMU channel of a 2600B (`smua` or `smub`)."""

    source_voltage = Channel.setting(
        "smu{ch}.source.levelv=%g",
        """Set the DC voltage level (float, V, strictly within the station's |V| limit).""",
        validator=strict_range,
        values=[-1.0, 1.0],
        dynamic=True,
    )
    source_range_v = Channel.setting(
        "smu{ch}.source.rangev=%g",
        """Set the voltage source range (float, V, one of the model's ranges: 2602B 0.1/1/6/40, 2636B 0.2/2/20/200).""",
        validator=strict_discrete_set,
        values=(),
        dynamic=True,
    )
    compliance_current = Channel.setting(
        "smu{ch}.source.limiti=%g",
        """Set the current compliance (float, A, strictly within the station's compliance).""",
        validator=strict_range,
        values=[1e-9, 1.5],
        dynamic=True,
    )
    output_enabled = Channel.setting(
        "smu{ch}.source.output=%d",
        """Set the output relay on (True) or off (False).""",
        validator=strict_discrete_set,
        values={True: 1, False: 0},
        map_values=True,
    )
    nplc = Channel.setting(
        "smu{ch}.measure.nplc=%g",
        """Set the integration time of measurements (float, power-line cycles, 0.001..25).""",
        validator=strict_range,
        values=[0.001, 25.0],
    )

    #: |V| the channel may source (V); 0 until configure_source, so nothing is allowed before
    v_limit = 0.0

    def configure_source(self, v_max: float, compliance_a: float, rating: Rating) -> None:
        """Make the channel a voltage source at 0 V on the model's smallest range that holds v_max."""
        fits = [r for r in rating.v_ranges if v_max <= r * 1.01]
        if not fits:
            raise ValueError(f"smu{self.id}: {v_max:g} V is beyond the {rating.model}'s ranges "
                             f"({', '.join(f'{r:g}' for r in rating.v_ranges)} V)")
        i_max = rating.i_max_at(v_max) or 0.0
        if compliance_a > i_max:
            raise ValueError(f"smu{self.id}: compliance {compliance_a:g} A is beyond the {rating.model}'s "
                             f"{i_max:g} A at {v_max:g} V")
        self.source_range_v_values = list(rating.v_ranges)
        self.v_limit = v_max
        self.source_voltage_values = [-v_max, v_max]
        self.compliance_current_values = [1e-9, compliance_a]
        self.write("smu{ch}.source.func=smu{ch}.OUTPUT_DCVOLTS")
        self.source_range_v = fits[0]
        self.compliance_current = compliance_a
        self.source_voltage = 0.0
        self.output_enabled = True

    def configure_voltmeter(self, v_max: float, nplc: float, autozero: bool = True) -> None:
        """Make the channel a voltmeter: source 0 A, limit |V| to v_max, measure V, autozero AUTO or OFF."""
        self.write("smu{ch}.source.func=smu{ch}.OUTPUT_DCAMPS smu{ch}.source.leveli=0")
        az = "AUTOZERO_AUTO" if autozero else "AUTOZERO_OFF"
        self.write(f"smu{{ch}}.source.limitv={v_max:g} smu{{ch}}.measure.autorangev=smu{{ch}}.AUTORANGE_ON "
                   f"smu{{ch}}.measure.autozero=smu{{ch}}.{az}")
        self.nplc = nplc
        self.output_enabled = True


class Keithley2600(SafeInstrument, Instrument):
    """Keithley 2600B SourceMeter over TSP: sources, voltmeters, pulses for memristive programming."""

    error_query = 'code,msg=errorqueue.next() print(string.format("%d,%s",code,msg))'
    line_query = "print(localnode.linefreq)"

    smua = Instrument.ChannelCreator(SMU, "a")
    smub = Instrument.ChannelCreator(SMU, "b")

    def __init__(self, adapter, name: str = "Keithley 2600", binary: bool = True, **kwargs) -> None:
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        self._init_safe()
        self.binary = binary
        self.sources: set[str] = set()
        self.used: set[str] = set()
        self.rating: Rating | None = None
        self.timing: InstrumentTiming = Keithley2600Timing(bytes_per_reading=4.0 if binary else 15.0)

    def identify(self) -> str:
        """Get the identification string (*IDN?) and learn the model's ranges from it."""
        idn = super().identify()
        try:
            self.rating = model_rating("keithley2600", idn)
        except ConfigError:  # LabCrossbar names the unknown model; nothing is sourced without one
            self.rating = None
        return idn

    def channel(self, ch: str) -> SMU:
        if ch not in ("a", "b"):
            raise ValueError(f"{self.name}: no SMU channel {ch!r} (a or b)")
        return self.smua if ch == "a" else self.smub

    def configure(self) -> None:
        """Set the data format of every buffered read (REAL32 little-endian, or ASCII)."""
        if self.binary:
            self.write("format.data=format.REAL32 format.byteorder=format.LITTLEENDIAN")
        else:
            self.write("format.data=format.ASCII format.asciiprecision=7")
        self.raise_errors("format")

    def configure_source(self, channels: list[str], v_max: float, compliance_a: float) -> None:
        if self.rating is None:
            raise InstrumentError(f"{self.name}: model unknown; identify() (*IDN?) before sourcing")
        for ch in channels:
            self.channel(ch).configure_source(v_max, compliance_a, self.rating)
            self.sources.add(ch)
            self.used.add(ch)
            self.last_levels[ch] = 0.0
        self.raise_errors("configure_source")

    def configure_reads(self, channels: list[str], v_max: float, nplc: float, autozero: bool = True) -> None:
        for ch in channels:
            self.channel(ch).configure_voltmeter(v_max, nplc, autozero)
            self.used.add(ch)
        self.timing = self.timing.with_(nplc=nplc, autozero=autozero, line_hz=self.line_frequency())
        self.raise_errors("configure_reads")

    def apply_levels(self, levels: dict[str, float]) -> None:
        """Set several source levels in one write (every value validated first)."""
        for ch, v in levels.items():  # validate all before sending any
            vmax = self.channel(ch).v_limit
            if not abs(v) <= vmax:
                raise ValueError(f"{self.name}: {v:g} V is outside ±{vmax:g} V on smu{ch}")
        self.write(" ".join(f"smu{ch}.source.levelv={v:g}" for ch, v in levels.items()))
        self.last_levels.update(levels)

    def read_voltages(self, channels: list[str], n: int) -> np.ndarray:
        """Measure n voltage readings on each channel into nvbuffer1 and print them: one transaction.

        Returns an `(n, len(channels))` array (V).
        """
        strict_range(n, [1, BUFFER_MAX])
        parts = []
        for ch in channels:
            self.channel(ch)
            parts.append(f"smu{ch}.measure.count={n} smu{ch}.nvbuffer1.clear()")
        for ch in channels:
            parts.append(f"smu{ch}.measure.v(smu{ch}.nvbuffer1)")
        bufs = ",".join(f"smu{ch}.nvbuffer1.readings" for ch in channels)
        parts.append(f"printbuffer(1,{n},{bufs})")
        k = len(channels)
        with self.timeout_for(self.timing.estimate_read_s(n, k)):  # the script runs before the reply comes
            self.write(" ".join(parts))
            if self.binary:
                values = read_binary(self, "<f4", n * k)
            else:
                values = parse_ascii(self.read(), n * k, self.name)
        # printbuffer interleaves the buffers reading by reading: a1,b1,a2,b2,...
        return self.refuse_overloads(values.reshape(n, k), [f"smu{ch}" for ch in channels], "auto")

    # --- memristive programming -----------------------------------------------------------
    def pulse(self, ch: str, volts: float, width_s: float, v_abs_max: float) -> None:
        """Apply one voltage pulse of `width_s` and return the level to 0 V (one write)."""
        strict_range(volts, [-v_abs_max, v_abs_max])
        strict_range(width_s, [1e-6, 1.0])
        self.channel(ch)
        self.last_levels[ch] = volts  # until the line is known to have run to its end: a TSP error stops it
        self.write(f"smu{ch}.source.levelv={volts:g} delay({width_s:g}) smu{ch}.source.levelv=0")
        self.last_levels[ch] = 0.0

    def read_current(self, ch: str, v_read: float, v_abs_max: float) -> float:
        """Measure the current at v_read, then return to 0 V (one query); A."""
        strict_range(v_read, [-v_abs_max, v_abs_max])
        self.channel(ch)
        self.last_levels[ch] = v_read  # left there if the line stops early (a TSP error: no print, no reply)
        with self.timeout_for(self.timing.estimate_read_s(1, 1)):
            reply = self.ask(f"smu{ch}.source.levelv={v_read:g} print(smu{ch}.measure.i()) smu{ch}.source.levelv=0")
        self.last_levels[ch] = 0.0
        try:
            return float(reply.strip())
        except ValueError:
            raise InstrumentError(f"{self.name}: unreadable current {reply!r}") from None

    # --- cleanup ---------------------------------------------------------------------------
    def ramp_down_commands(self, max_step: float) -> Iterator[str]:
        steps = {ch: ramp_steps(v, 0.0, max_step) for ch, v in self.last_levels.items() if v != 0.0}
        for k in range(max((len(s) for s in steps.values()), default=0)):
            yield " ".join(f"smu{ch}.source.levelv={s[min(k, len(s) - 1)]:g}" for ch, s in steps.items())

    def output_off_commands(self) -> list[str]:
        return [" ".join(f"smu{ch}.source.output=0" for ch in sorted(self.used or {"a"}))]

    def shutdown(self) -> None:
        """Ramp every source to 0 V and switch both outputs off, with writes only."""
        self.safe_shutdown(max_step=0.1)
        super().shutdown()
