"""What the single-channel SCPI SourceMeters (2400, 2450) share: settings, levels, safe shutdown.

Each model keeps what its manual makes different: its ranges, its compliance command,
its data format and its buffered read.
"""

from __future__ import annotations

from collections.abc import Iterator

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from hil.drivers.base import SafeInstrument, ramp_steps


class SingleChannelSMU(SafeInstrument):
    """Mixin for a pymeasure SourceMeter class: one channel (`""`), a voltage source or a voltmeter."""

    line_query = ":SYST:LFR?"
    #: what selects the voltage source (the 2400 also needs its fixed sourcing mode)
    source_function = ":SOUR:FUNC VOLT"
    #: the smallest voltage source range (V)
    min_source_range = 0.2

    source_voltage = Instrument.setting(
        ":SOUR:VOLT %g",
        """Set the DC voltage level (float, V, strictly within the station's |V| limit).""",
        validator=strict_range,
        values=[-1.0, 1.0],
        dynamic=True,
    )
    output_enabled = Instrument.setting(
        ":OUTP %s",
        """Set the output on (True) or off (False).""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
    )
    voltage_nplc = Instrument.setting(
        ":SENS:VOLT:NPLC %g",
        """Set the voltage integration time (float, power-line cycles, 0.01..10).""",
        validator=strict_range,
        values=[0.01, 10.0],
    )

    def configure_source(self, channels: list[str], v_max: float, compliance_a: float) -> None:
        """Voltage source at 0 V, range and current limit from the station, output on."""
        self.source_voltage_values = [-v_max, v_max]
        self.compliance_current_values = [1e-9, compliance_a]
        self.write(self.source_function)
        self.source_voltage_range = max(self.min_source_range, v_max)
        self.compliance_current = compliance_a
        self.source_voltage = 0.0
        self.output_enabled = True
        self.last_levels[""] = 0.0
        self.raise_errors("configure_source")

    def apply_levels(self, levels: dict[str, float]) -> None:
        for ch, v in levels.items():
            if ch != "":
                raise ValueError(f"{self.name} has a single channel, not {ch!r}")
            self.source_voltage = v
            self.last_levels[""] = v

    def ramp_down_commands(self, max_step: float) -> Iterator[str]:
        for v in ramp_steps(self.last_levels.get("", 0.0), 0.0, max_step):
            yield f":SOUR:VOLT {v:g}"

    def output_off_commands(self) -> list[str]:
        return [":OUTP OFF"]

    def shutdown(self) -> None:
        """Ramp to 0 V from the last level written and switch the output off, with writes only."""
        self.safe_shutdown(max_step=0.1)
        self.isShutdown = True
