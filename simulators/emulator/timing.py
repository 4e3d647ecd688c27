"""The emulator's clock and its own timing model of each instrument (written from the manuals).

`Clock` is emulated time: `speed` emulated seconds pass per real second (1: as the
instrument; `hil emulate --speed 100` for CI).  An instrument that works for `t`
emulated seconds sleeps `t / speed` real seconds, so a client's timeout meets the
instrument's real duration scaled by `speed`, and a too-short timeout fails for real.

The model of one reading (what each instrument module uses; `drivers/` keeps its own copy):

    aperture     = NPLC / line frequency                       (every manual: NPLC in line cycles)
    integration  = aperture * 2 when autozero is on            (a zero measurement after each
                                                                reading; DAQ970A/34970A manual,
                                                                "Autozero ... doubles")
    reading      = integration + overhead                      (A/D and processing; from the
                                                                reading-rate specifications)
    per trigger  = source/trigger delay + reading              (SMUs: SOUR:DEL, TRIG:DEL)
    per channel  = relay switching + channel delay + reading   (scanning DMMs)
    transfer     = reply bytes / link rate                     (query replies)

The constants below are the emulator's: `OVERHEAD_S` from the specified reading rates
at the fastest NPLC (2400: ~2000 rdg/s at 0.01 PLC to memory; 2600B: 20 000 rdg/s at
0.001 PLC; DAQ6510 / DAQ970A / 34970A: fastest DCV rates of their specifications),
`SWITCH_S` from the cards' scan rates (34901A: 60 ch/s; DAQM901A: 80 ch/s; 7700: 80 ch/s;
a 707B relay 3 ms actuation), `CHANNEL_DELAY_S` the DAQ970A/34970A automatic channel delay
for DC volts (2 ms), `LINK_BYTES_PER_S` an assumed 1 MB/s instrument output rate.
"""

from __future__ import annotations

import math
import threading
import time

#: instrument-internal time per reading beyond the integration (s)
OVERHEAD_S = {"keithley2400": 3.0e-4, "keithley2450": 3.0e-4, "keithley2600": 3.5e-5, "daq6510": 1.0e-4,
              "daq970a": 1.0e-4, "agilent34970a": 2.0e-4}
#: relay switching time per channel of a scan (s): 1 / scan rate of the card less the channel delay
SWITCH_S = {"daq970a": 1 / 80 - 0.002, "agilent34970a": 1 / 60 - 0.002, "daq6510": 1 / 80 - 0.002,
            "keithley707b": 3.0e-3}
#: automatic channel delay of a DC-volts scan (s), DAQ970A / 34970A / DAQ6510
CHANNEL_DELAY_S = 2.0e-3
#: automatic source delay of a voltage source on its low ranges (s), 2400 / 2450
SOURCE_DELAY_S = 1.0e-3
#: instrument output rate assumed for query replies (bytes per second)
LINK_BYTES_PER_S = 1.0e6
#: default line frequency of the emulated mains (Hz); `hil emulate --line-freq 50` for Europe
LINE_HZ = 60.0


def integration_s(nplc: float, line_hz: float, autozero: bool) -> float:
    """Integration time of one reading: NPLC line cycles, doubled when autozero is on."""
    return nplc / line_hz * (2.0 if autozero else 1.0)


def reading_s(kind: str, nplc: float, line_hz: float, autozero: bool) -> float:
    return integration_s(nplc, line_hz, autozero) + OVERHEAD_S.get(kind, 1e-4)


def scan_s(kind: str, n_channels: int, nplc: float, line_hz: float, autozero: bool,
           channel_delay_s: float = CHANNEL_DELAY_S) -> float:
    """One sweep of a scan list: every channel switched, settled and read."""
    per = SWITCH_S.get(kind, 0.0) + channel_delay_s + reading_s(kind, nplc, line_hz, autozero)
    return n_channels * per


def transfer_s(n_bytes: int) -> float:
    return n_bytes / LINK_BYTES_PER_S


class Clock:
    """Emulated time, `speed` (finite, > 0) times faster than real time."""

    def __init__(self, speed: float = 1.0) -> None:
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a finite number > 0, got {speed}")
        self.speed = speed
        self._t0 = time.monotonic()
        self._stop = threading.Event()

    def now(self) -> float:
        """Emulated seconds since the clock started."""
        return (time.monotonic() - self._t0) * self.speed

    def sleep(self, emulated_s: float) -> None:
        """Let `emulated_s` emulated seconds pass (real: emulated_s / speed); returns early on `stop()`."""
        if emulated_s > 0:
            self._stop.wait(emulated_s / self.speed)

    def sleep_until(self, emulated_t: float) -> None:
        self.sleep(emulated_t - self.now())

    def stop(self) -> None:
        """Wake every sleeper (the emulator is stopping)."""
        self._stop.set()
