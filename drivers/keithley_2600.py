"""Keithley 2600B series SourceMeters (2601B, 2602B, 2611B, 2612B, 2635B, 2636B), TSP.

Written fresh (pymeasure's `keithley2600.py` predates `ChannelCreator` and uses
`truncated_range`).  An N-sample read is one TSP line that fills `nvbuffer1` with N
readings on every channel asked for and prints them with `printbuffer`, as REAL32
little-endian binary: one transaction whatever N.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from pymeasure.instruments import Channel, Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from hil.drivers.base import InstrumentError, SafeInstrument, parse_ascii, ramp_steps, read_binary

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: readings one nvbuffer holds on the 2600B
BUFFER_MAX = 60_000


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
        """Set the voltage source range (float, V, 0.1..40).""",
        validator=strict_range,
        values=[0.1, 40.0],
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

    def configure_source(self, v_max: float, compliance_a: float) -> None:
        """Make the channel a voltage source at 0 V, with range and compliance from the station."""
        self.v_limit = v_max
        self.source_voltage_values = [-v_max, v_max]
        self.compliance_current_values = [1e-9, compliance_a]
        self.write("smu{ch}.source.func=smu{ch}.OUTPUT_DCVOLTS")
        self.source_range_v = max(0.1, v_max)
        self.compliance_current = compliance_a
        self.source_voltage = 0.0
        self.output_enabled = True

    def configure_voltmeter(self, v_max: float, nplc: float) -> None:
        """Make the channel a voltmeter: source 0 A, limit |V| to v_max, measure V."""
        self.write("smu{ch}.source.func=smu{ch}.OUTPUT_DCAMPS smu{ch}.source.leveli=0")
        self.write(f"smu{{ch}}.source.limitv={v_max:g} smu{{ch}}.measure.autorangev=smu{{ch}}.AUTORANGE_ON")
        self.nplc = nplc
        self.output_enabled = True


class Keithley2600(SafeInstrument, Instrument):
    """Keithley 2600B SourceMeter over TSP: sources, voltmeters, pulses for memristive programming."""

    error_query = 'code,msg=errorqueue.next() print(string.format("%d,%s",code,msg))'

    smua = Instrument.ChannelCreator(SMU, "a")
    smub = Instrument.ChannelCreator(SMU, "b")

    def __init__(self, adapter, name: str = "Keithley 2600", binary: bool = True, **kwargs) -> None:
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        self._init_safe()
        self.binary = binary
        self.sources: set[str] = set()
        self.used: set[str] = set()
        self.nplc = 1.0

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
        for ch in channels:
            self.channel(ch).configure_source(v_max, compliance_a)
            self.sources.add(ch)
            self.used.add(ch)
            self.last_levels[ch] = 0.0
        self.raise_errors("configure_source")

    def configure_reads(self, channels: list[str], v_max: float, nplc: float) -> None:
        for ch in channels:
            self.channel(ch).configure_voltmeter(v_max, nplc)
            self.used.add(ch)
        self.nplc = nplc
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
        with self.timeout_for(n * k * self.nplc * 0.02):  # the script runs before the reply comes
            self.write(" ".join(parts))
            if self.binary:
                values = read_binary(self, "<f4", n * k)
            else:
                values = parse_ascii(self.read(), n * k, self.name)
        return values.reshape(n, k)

    # --- memristive programming -----------------------------------------------------------
    def pulse(self, ch: str, volts: float, width_s: float, v_abs_max: float) -> None:
        """Apply one voltage pulse of `width_s` and return the level to 0 V (one write)."""
        strict_range(volts, [-v_abs_max, v_abs_max])
        strict_range(width_s, [1e-6, 1.0])
        self.channel(ch)
        self.write(f"smu{ch}.source.levelv={volts:g} delay({width_s:g}) smu{ch}.source.levelv=0")
        self.last_levels[ch] = 0.0

    def read_current(self, ch: str, v_read: float, v_abs_max: float) -> float:
        """Measure the current at v_read, then return to 0 V (one query); A."""
        strict_range(v_read, [-v_abs_max, v_abs_max])
        self.channel(ch)
        reply = self.ask(
            f"smu{ch}.source.levelv={v_read:g} print(smu{ch}.measure.i()) smu{ch}.source.levelv=0"
        )
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
