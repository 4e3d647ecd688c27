"""Readings as the instruments return them: overload, ASCII or binary formats, buffer elements.

An input beyond the measurement range reads `+9.9E+37` (or `-9.9E+37`), the overflow
value of every Keithley and Keysight manual here.  `TraceDataFormat` is `FORMat[:DATA]`
and `FORMat:BORDer` of Keithley's TSP-generation SCPI (2450, DAQ6510).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hil.simulators.emulator.errors import ScpiError
from hil.simulators.emulator.params import definite_block, text
from hil.simulators.emulator.scpi import scpi

OVERFLOW = 9.9e37


def overload(values: np.ndarray, full_scale: float, over: float = 1.2) -> np.ndarray:
    """`values` with every |v| above `over` * range replaced by +-9.9E+37 (the instruments' overflow)."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.abs(v) > over * full_scale, np.copysign(OVERFLOW, v), v)


def auto_range(value: float, ranges: tuple[float, ...], over: float = 1.2) -> float:
    """The smallest range whose over-range limit holds `value` (the largest when none does)."""
    return next((r for r in ranges if abs(value) <= over * r), ranges[-1])


class TraceDataFormat:
    """`FORMat[:DATA]` and `FORMat:BORDer`, shared by the 2450 and the DAQ6510.

    Mixed in before `Instrument`; `reset()` of the instrument sets `fmt = "ASC"` and `swapped = False`.
    """

    fmt: str
    swapped: bool

    @scpi("FORMat[:DATA]")
    def _fmt(self, raw: bytes) -> None:
        t = text(raw).upper()
        fmt = {"ASC": "ASC", "ASCII": "ASC", "SRE": "SRE", "SREAL": "SRE", "REAL": "REAL"}.get(t)
        if fmt is None:
            raise ScpiError(-224, "Illegal parameter value")
        self.fmt = fmt

    @scpi("FORMat[:DATA]?")
    def _fmt_q(self, raw: bytes) -> str:
        return {"ASC": "ASC", "SRE": "SRE", "REAL": "REAL"}[self.fmt]

    @scpi("FORMat:BORDer")
    def _bord(self, raw: bytes) -> None:
        t = text(raw).upper()
        if t not in ("NORM", "NORMAL", "SWAP", "SWAPPED"):
            raise ScpiError(-224, "Illegal parameter value")
        self.swapped = t.startswith("SWAP")

    def encode_readings(self, values: Any) -> str | bytes:
        """Readings as the format asks: ASCII, or a definite-length block of REAL32/REAL64."""
        if self.fmt == "ASC":
            return ",".join(f"{v:.9E}" for v in values)
        dt = ("<" if self.swapped else ">") + ("f4" if self.fmt == "SRE" else "f8")
        return definite_block(np.asarray(values, dtype=np.float64).astype(dt).tobytes())


class Acquisition:
    """Readings a trigger model started at `start` (emulated s): reading k is ready at start + (k + 1) * per.

    The values are drawn at the start (the world's state then); what a client can fetch
    at time t is what the instrument has finished by t.
    """

    def __init__(self, rows: np.ndarray, start: float, per: float) -> None:
        self.rows, self.start, self.per = rows, start, per

    @property
    def end(self) -> float:
        return self.start + len(self.rows) * self.per

    def done(self, now: float) -> int:
        if self.per <= 0:
            return len(self.rows)
        return int(min(len(self.rows), max(0.0, (now - self.start) / self.per + 1e-9)))

    def stop(self, now: float) -> None:
        """ABORt: keep what was finished."""
        self.rows = self.rows[: self.done(now)]
