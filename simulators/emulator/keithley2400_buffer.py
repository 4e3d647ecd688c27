"""The Keithley 2400's reading buffer, its statistics and the measurement status register (2400 User's Manual).

`TRACe:POINts` 1..2500 (beyond: -222), `:FEED SENSe`, `:FEED:CONTrol NEXT` fills it from
the next readings (then NEVer), `TRACe:DATA?` returns them in `FORMat:ELEMents`,
`TRACe:POINts:ACTual?` counts them; `CALCulate3:FORMat MEAN|SDEViation|MAXimum|MINimum|PKPK`
and `CALCulate3:DATA?` give the statistic of voltage, current and resistance (-230 when
empty).  Measurement event bit 9 (buffer full), enabled by `STATus:MEASurement:ENABle`,
sums into bit 0 of `*STB?`; `STATus:PRESet` clears the enables.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.params import number, text
from hil.simulators.emulator.readings import Acquisition
from hil.simulators.emulator.scpi import scpi

BFL = 1 << 9  # measurement event register: buffer full


class TraceBuffer2400:
    """Mixed into `Keithley2400` before `SourceMeter`; the instrument's reset sets the attributes below."""

    buffer: np.ndarray
    buffer_acq: tuple[Acquisition, int] | None
    points: int
    buffer_max: int
    feed: str
    feed_control: str
    stat_form: str
    meas_enable: int
    meas_event: int
    busy_until: float
    clock: Any
    wait_idle: Any  # Instrument's
    encode: Any  # Keithley2400's

    def _sync_buffer(self) -> None:
        """Move the readings the buffer has received by now into it."""
        if self.buffer_acq is None:
            return
        acq, want = self.buffer_acq
        done = min(acq.done(self.clock.now()), want)
        got = acq.rows[:done]
        if done == want or self.busy_until <= self.clock.now():
            self.buffer = np.vstack([self.buffer, got])
            self.buffer_acq = None
            if len(self.buffer) >= self.points:
                self.meas_event |= BFL

    def stored(self) -> np.ndarray:
        self._sync_buffer()
        if self.buffer_acq is None:
            return self.buffer
        acq, want = self.buffer_acq
        return np.vstack([self.buffer, acq.rows[: min(acq.done(self.clock.now()), want)]])

    def measurement_summary(self) -> bool:
        self._sync_buffer()
        return bool(self.meas_event & self.meas_enable)

    # --- buffer and statistics -----------------------------------------------------------------
    @scpi("TRACe:CLEar")
    def _trace_clear(self, raw: bytes) -> None:
        self.buffer, self.buffer_acq = np.zeros((0, 5)), None
        self.meas_event &= ~BFL

    @scpi("TRACe:POINts")
    def _tpoints(self, raw: bytes) -> None:
        self.points = int(number(text(raw), 1, self.buffer_max))

    @scpi("TRACe:POINts?")
    def _tpoints_q(self, raw: bytes) -> str:
        return str(self.points)

    @scpi("TRACe:POINts:ACTual?")
    def _tactual_q(self, raw: bytes) -> str:
        return str(len(self.stored()))

    @scpi("TRACe:FEED")
    def _tfeed(self, raw: bytes) -> None:
        t = text(raw).upper()
        names = {"SENS": "SENS", "SENSE": "SENS", "SENS1": "SENS", "SENSE1": "SENS", "CALC1": "CALC1",
                 "CALC2": "CALC2", "CALCULATE1": "CALC1", "CALCULATE2": "CALC2"}
        if t not in names:
            raise ScpiError(-224, "Illegal parameter value")
        self.feed = names[t]

    @scpi("TRACe:FEED?")
    def _tfeed_q(self, raw: bytes) -> str:
        return self.feed

    @scpi("TRACe:FEED:CONTrol")
    def _tfeedc(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("NEXT", "NEV", "NEVER"):
            raise ScpiError(-224, "Illegal parameter value")
        self.feed_control = t[:4]

    @scpi("TRACe:FEED:CONTrol?")
    def _tfeedc_q(self, raw: bytes) -> str:
        return self.feed_control

    @scpi("TRACe:DATA?")
    def _tdata(self, raw: bytes) -> bytes | str:
        self.wait_idle()
        return self.encode(self.stored())

    @scpi("CALCulate3:FORMat")
    def _stat_form(self, raw: bytes) -> None:
        t = text(raw).upper()
        names = {"MEAN": "MEAN", "SDEV": "SDEV", "SDEVIATION": "SDEV", "MAX": "MAX", "MAXIMUM": "MAX",
                 "MIN": "MIN", "MINIMUM": "MIN", "PKPK": "PKPK"}
        if t not in names:
            raise ScpiError(-224, "Illegal parameter value")
        self.stat_form = names[t]

    @scpi("CALCulate3:FORMat?")
    def _stat_form_q(self, raw: bytes) -> str:
        return self.stat_form

    @scpi("CALCulate3:DATA?")
    def _stat_data(self, raw: bytes) -> str:
        rows = self.stored()[:, :3]
        if not len(rows):
            raise ScpiError(-230, "Data corrupt or stale; buffer empty")
        fn = {"MEAN": np.mean, "MAX": np.max, "MIN": np.min, "PKPK": np.ptp,
              "SDEV": lambda a, axis: np.std(a, axis=axis, ddof=1) if len(a) > 1 else np.zeros(3)}[self.stat_form]
        return ",".join(f"{v:+.6E}" for v in fn(rows, axis=0))

    # --- status -----------------------------------------------------------------------------------
    @scpi("STATus:PRESet")
    def _stat_preset(self, raw: bytes) -> None:
        self.meas_enable = 0

    @scpi("STATus:MEASurement:ENABle")
    def _meas_enable(self, raw: bytes) -> None:
        self.meas_enable = int(number(text(raw), 0, 65535))

    @scpi("STATus:MEASurement:ENABle?")
    def _meas_enable_q(self, raw: bytes) -> str:
        return str(self.meas_enable)

    @scpi("STATus:MEASurement[:EVENt]?")
    def _meas_event_q(self, raw: bytes) -> str:
        self._sync_buffer()
        value, self.meas_event = self.meas_event, 0
        return str(value)
