"""What the Keithley 2400 and 2450 SourceMeters share: a source, a measurement of the terminals, time.

From the reference manuals (2400 Series User's Manual, SCPI chapters; 2450 Reference
Manual, SCPI command reference), which write these commands alike:

- the source: `SOURce:FUNCtion VOLTage|CURRent`, its level, range (fixed, or
  `:RANGe:AUTO ON`: the range follows the level) and limit; a level beyond a fixed
  range is -222 and is not applied;
- the measurement reads what the terminals hold: sourcing volts, the voltage is the
  level and the current what the load draws (`World.current`); sourcing amps, the
  current is the level and the voltage what the wired node settles at;
- `[SENSe:]VOLTage|CURRent:RANGe[:UPPer]`, `:RANGe:AUTO`, `:NPLCycles`: a reading
  beyond a fixed measurement range is +9.9E+37 (the source range bounds the sourced
  quantity); ranges over-range by 5 %;
- one trigger takes the source delay, the trigger delay, and one integration of NPLC
  line cycles per function measured (doubled with autozero on), see `timing.py`.
"""

from __future__ import annotations

import numpy as np

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.params import boolean, number, text
from hil.simulators.emulator.readings import auto_range, overload
from hil.simulators.emulator.scpi import Instrument, scpi
from hil.simulators.emulator.timing import SOURCE_DELAY_S, reading_s

FUNCS = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR"}


def function(raw: bytes) -> str:
    t = text(raw).upper().strip("'\"").split(":")[0]
    if t not in FUNCS:
        raise ScpiError(-224, f"Illegal parameter value; function {t[:10]}")
    return FUNCS[t]


class SourceMeter(Instrument):
    """One SMU channel; subclasses add their limit, buffer, trigger and format commands."""

    v_ranges: tuple[float, ...] = (0.2, 2.0, 20.0, 200.0)
    i_ranges: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    over = 1.05
    output_off_error: tuple[int, str] = (-221, "Settings conflict; output off")
    trip_error: tuple[int, str] = (-222, "Data out of range; compliance trip, output off")

    def reset(self) -> None:
        self.func = "VOLT"
        self.level = {"VOLT": 0.0, "CURR": 0.0}
        self.src_range = {"VOLT": 20.0, "CURR": 1e-4}
        self.src_auto = {"VOLT": True, "CURR": True}
        self.i_limit = 1.05e-4
        self.v_limit = 21.0
        self.meas_range = {"VOLT": 20.0, "CURR": 1e-4}
        self.meas_auto = {"VOLT": True, "CURR": True}
        self.nplc = {"VOLT": 1.0, "CURR": 1.0}
        self.autozero = True
        self.sense = ["CURR"]
        self.output = False
        self.source_delay = SOURCE_DELAY_S
        self.source_delay_auto = True
        self.trig_delay = 0.0

    def ranges(self, fn: str) -> tuple[float, ...]:
        return self.v_ranges if fn == "VOLT" else self.i_ranges

    # --- state seen by the world and the tests ----------------------------------------------------
    @property
    def level_v(self) -> float:
        return self.level["VOLT"]

    def source_level(self, channel: str) -> float:
        return self.level["VOLT"] if (self.output and self.func == "VOLT") else 0.0

    def outputs_on(self) -> dict[str, bool]:
        return {"": self.output}

    def levels(self) -> dict[str, float]:
        return {"": self.level["VOLT"]}

    def trip(self) -> None:
        with self.lock:
            self.output = False
            self.level["VOLT"] = 0.0
            self.push_error(*self.trip_error)

    # --- measurement --------------------------------------------------------------------------------
    def terminals(self, n: int) -> dict[str, np.ndarray]:
        """n measurements of voltage and current at the terminals (before ranging)."""
        if not self.output:
            raise ScpiError(*self.output_off_error)
        lvl = self.level[self.func]
        if self.func == "VOLT":
            i = self.world.current(self.name, "", lvl) if self.world is not None else 0.0
            return {"VOLT": np.full(n, lvl), "CURR": np.full(n, i)}
        v = self.world.read(self.name, [""], n)[:, 0] if self.world is not None else np.zeros(n)
        return {"VOLT": v, "CURR": np.full(n, lvl)}

    def measured(self, n: int) -> dict[str, np.ndarray]:
        """The readings of n triggers: each function in its range, +9.9E+37 beyond a fixed one."""
        out = {}
        for fn, values in self.terminals(n).items():
            if fn == self.func:
                rng = auto_range(max(abs(values).max(), 0.0), self.ranges(fn), self.over) \
                    if self.src_auto[fn] else self.src_range[fn]
            elif self.meas_auto[fn]:
                rng = self.ranges(fn)[-1]
            else:
                rng = self.meas_range[fn]
            out[fn] = overload(values, rng, self.over)
        return out

    def trigger_s(self) -> float:
        """Emulated duration of one trigger: delays, then one integration per function measured."""
        delay = (SOURCE_DELAY_S if self.source_delay_auto else self.source_delay) + self.trig_delay
        return delay + sum(reading_s(self.kind, self.nplc[fn], self.line_hz, self.autozero) for fn in self.sense)

    # --- source ---------------------------------------------------------------------------------
    @scpi("SOURce:FUNCtion[:MODE]")
    def _func(self, raw: bytes) -> None:
        self.func = function(raw)

    @scpi("SOURce:FUNCtion[:MODE]?")
    def _func_q(self, raw: bytes) -> str:
        return self.func

    def _set_level(self, fn: str, raw: bytes) -> None:
        top = self.ranges(fn)[-1] if self.src_auto[fn] else self.src_range[fn]
        value = number(text(raw), -top * self.over, top * self.over)
        if self.src_auto[fn]:
            self.src_range[fn] = auto_range(value, self.ranges(fn), self.over)
        self.level[fn] = value

    @scpi("SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def _volt(self, raw: bytes) -> None:
        self._set_level("VOLT", raw)

    @scpi("SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]?")
    def _volt_q(self, raw: bytes) -> str:
        return f"{self.level['VOLT']:+.6E}"

    @scpi("SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]")
    def _curr(self, raw: bytes) -> None:
        self._set_level("CURR", raw)

    @scpi("SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]?")
    def _curr_q(self, raw: bytes) -> str:
        return f"{self.level['CURR']:+.6E}"

    def _set_range(self, table: dict[str, float], fn: str, raw: bytes) -> None:
        value = number(text(raw), 0.0, self.ranges(fn)[-1] * self.over)
        table[fn] = next(r for r in self.ranges(fn) if r * self.over >= value)

    @scpi("SOURce:VOLTage:RANGe")
    def _vrange(self, raw: bytes) -> None:
        self._set_range(self.src_range, "VOLT", raw)
        self.src_auto["VOLT"] = False

    @scpi("SOURce:VOLTage:RANGe?")
    def _vrange_q(self, raw: bytes) -> str:
        return f"{self.src_range['VOLT'] * self.over:+.6E}"

    @scpi("SOURce:CURRent:RANGe")
    def _irange(self, raw: bytes) -> None:
        self._set_range(self.src_range, "CURR", raw)
        self.src_auto["CURR"] = False

    @scpi("SOURce:CURRent:RANGe?")
    def _irange_q(self, raw: bytes) -> str:
        return f"{self.src_range['CURR'] * self.over:+.6E}"

    @scpi("SOURce:VOLTage:RANGe:AUTO")
    def _vrange_auto(self, raw: bytes) -> None:
        self.src_auto["VOLT"] = boolean(text(raw))

    @scpi("SOURce:CURRent:RANGe:AUTO")
    def _irange_auto(self, raw: bytes) -> None:
        self.src_auto["CURR"] = boolean(text(raw))

    @scpi("SOURce:VOLTage:RANGe:AUTO?")
    def _vrange_auto_q(self, raw: bytes) -> str:
        return "1" if self.src_auto["VOLT"] else "0"

    @scpi("SOURce:CURRent:RANGe:AUTO?")
    def _irange_auto_q(self, raw: bytes) -> str:
        return "1" if self.src_auto["CURR"] else "0"

    @scpi("OUTPut[:STATe]")
    def _outp(self, raw: bytes) -> None:
        self.output = boolean(text(raw))

    @scpi("OUTPut[:STATe]?")
    def _outp_q(self, raw: bytes) -> str:
        return "1" if self.output else "0"

    # --- measurement ranges and speed -----------------------------------------------------------
    @scpi("[SENSe:]VOLTage[:DC]:RANGe[:UPPer]")
    def _mvrange(self, raw: bytes) -> None:
        self._set_range(self.meas_range, "VOLT", raw)
        self.meas_auto["VOLT"] = False

    @scpi("[SENSe:]CURRent[:DC]:RANGe[:UPPer]")
    def _mirange(self, raw: bytes) -> None:
        self._set_range(self.meas_range, "CURR", raw)
        self.meas_auto["CURR"] = False

    @scpi("[SENSe:]VOLTage[:DC]:RANGe[:UPPer]?")
    def _mvrange_q(self, raw: bytes) -> str:
        return f"{self.meas_range['VOLT'] * self.over:+.6E}"

    @scpi("[SENSe:]CURRent[:DC]:RANGe[:UPPer]?")
    def _mirange_q(self, raw: bytes) -> str:
        return f"{self.meas_range['CURR'] * self.over:+.6E}"

    @scpi("[SENSe:]VOLTage[:DC]:RANGe:AUTO")
    def _mvauto(self, raw: bytes) -> None:
        self.meas_auto["VOLT"] = boolean(text(raw))

    @scpi("[SENSe:]CURRent[:DC]:RANGe:AUTO")
    def _miauto(self, raw: bytes) -> None:
        self.meas_auto["CURR"] = boolean(text(raw))

    @scpi("[SENSe:]VOLTage[:DC]:RANGe:AUTO?")
    def _mvauto_q(self, raw: bytes) -> str:
        return "1" if self.meas_auto["VOLT"] else "0"

    @scpi("[SENSe:]CURRent[:DC]:RANGe:AUTO?")
    def _miauto_q(self, raw: bytes) -> str:
        return "1" if self.meas_auto["CURR"] else "0"

    def set_nplc(self, fn: str, value: float) -> None:
        self.nplc[fn] = value

    @scpi("[SENSe:]VOLTage[:DC]:NPLCycles")
    def _vnplc(self, raw: bytes) -> None:
        self.set_nplc("VOLT", number(text(raw), 0.01, 10.0))

    @scpi("[SENSe:]CURRent[:DC]:NPLCycles")
    def _inplc(self, raw: bytes) -> None:
        self.set_nplc("CURR", number(text(raw), 0.01, 10.0))

    @scpi("[SENSe:]VOLTage[:DC]:NPLCycles?")
    def _vnplc_q(self, raw: bytes) -> str:
        return f"{self.nplc['VOLT']:+.6E}"

    @scpi("[SENSe:]CURRent[:DC]:NPLCycles?")
    def _inplc_q(self, raw: bytes) -> str:
        return f"{self.nplc['CURR']:+.6E}"

    @scpi("ABORt")
    def _abort(self, raw: bytes) -> None:
        self.abort()
