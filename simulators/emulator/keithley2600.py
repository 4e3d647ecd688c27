"""Keithley 2600B SourceMeter (TSP): two channels, `smua` and `smub`.

Attributes per the 2600B reference manual: `smuX.source.func` (`smuX.OUTPUT_DCVOLTS`
= 1, `smuX.OUTPUT_DCAMPS` = 0), `levelv`, `leveli`, `rangev`, `limiti`, `limitv`,
`output` (`smuX.OUTPUT_ON` = 1, `OUTPUT_OFF` = 0), `smuX.measure.nplc`, `count`,
`autorangev`; `smuX.measure.v(buffer)` takes `count` readings into a reading
buffer (`smuX.nvbuffer1`, `clear()`), `smuX.measure.v()` / `.i()` return one;
`printbuffer(start, end, buf.readings, ...)` prints the readings of several buffers
interleaved, in `format.data` (`format.ASCII`, or `format.REAL32` / `REAL64` as `#0`
followed by the bytes in `format.byteorder`).  A level beyond the range, or a read
with the output off, is an error (5007 / 5042 style codes, queued like any other).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hil.simulators.emulator.tsp import TspError, TspInstrument

CONSTANTS = {
    "OUTPUT_DCAMPS": 0.0, "OUTPUT_DCVOLTS": 1.0, "OUTPUT_OFF": 0.0, "OUTPUT_ON": 1.0,
    "AUTORANGE_OFF": 0.0, "AUTORANGE_ON": 1.0, "ENABLE": 1.0, "DISABLE": 0.0,
}
FORMAT = {"format.ASCII": 1.0, "format.SREAL": 2.0, "format.REAL": 3.0, "format.REAL32": 2.0,
          "format.REAL64": 3.0, "format.NORMAL": 0.0, "format.BIGENDIAN": 0.0, "format.NETWORK": 0.0,
          "format.SWAPPED": 1.0, "format.LITTLEENDIAN": 1.0}
V_RANGES = (0.1, 1.0, 6.0, 40.0)


@dataclass(frozen=True)
class _Buffer:
    """A reading buffer named in a TSP expression: `smua.nvbuffer1` or its `.readings`."""

    what: str  # "buffer" | "readings"
    channel: str


class _Channel:
    def __init__(self) -> None:
        self.func = 1.0
        self.levelv = 0.0
        self.leveli = 0.0
        self.rangev = 40.0
        self.limiti = 1e-4
        self.limitv = 40.0
        self.output = 0.0
        self.nplc = 1.0
        self.count = 1.0
        self.autorangev = 1.0
        self.buffer: list[float] = []


class Keithley2600(TspInstrument):
    kind = "keithley2600"
    idn = "Keithley Instruments Inc., Model 2636B, EMU0001, 3.2.2"
    queue_size = 32

    def reset(self) -> None:
        self.ch = {"a": _Channel(), "b": _Channel()}
        self.format_data = 1.0
        self.byteorder = 1.0
        self.asciiprecision = 6.0

    def source_level(self, channel: str) -> float:
        c = self.ch.get(channel)
        return c.levelv if c is not None and c.output and c.func == 1.0 else 0.0

    def outputs_on(self) -> dict[str, bool]:
        return {k: bool(c.output) for k, c in self.ch.items()}

    def levels(self) -> dict[str, float]:
        return {k: c.levelv for k, c in self.ch.items()}

    def trip(self) -> None:
        with self.lock:
            for c in self.ch.values():
                c.output = 0.0
                c.levelv = 0.0
            self.push_error(5065, "I limit exceeded; output off")

    def _split(self, name: str) -> tuple[_Channel, str, str]:
        parts = name.split(".", 1)
        if not parts[0].startswith("smu") or parts[0][3:] not in self.ch or len(parts) < 2:
            raise TspError(-286, f"TSP Runtime error at line 1: attempt to index a nil value ({name})")
        return self.ch[parts[0][3:]], parts[0][3:], parts[1]

    def get(self, name: str) -> Any:
        if name in FORMAT:
            return FORMAT[name]
        if name == "format.data":
            return self.format_data
        if name.startswith("errorqueue."):
            return self.get_common(name)
        c, _, attr = self._split(name)
        if attr in CONSTANTS:
            return CONSTANTS[attr]
        key = {"source.func": "func", "source.levelv": "levelv", "source.leveli": "leveli",
               "source.rangev": "rangev", "source.limiti": "limiti", "source.limitv": "limitv",
               "source.output": "output", "measure.nplc": "nplc", "measure.count": "count",
               "measure.autorangev": "autorangev"}.get(attr)
        if key is not None:
            return getattr(c, key)
        if attr in ("nvbuffer1", "nvbuffer2"):
            return _Buffer("buffer", name.split(".")[0][3:])
        if attr in ("nvbuffer1.readings", "nvbuffer2.readings"):
            return _Buffer("readings", name.split(".")[0][3:])
        if attr in ("nvbuffer1.n", "nvbuffer2.n"):
            return float(len(c.buffer))
        return super().get(name)

    def set(self, name: str, value: Any) -> None:
        if name == "format.data":
            if value not in (1.0, 2.0, 3.0):
                raise TspError(5007, "Parameter error; format.data")
            self.format_data = value
            return
        if name == "format.byteorder":
            self.byteorder = float(value)
            return
        if name == "format.asciiprecision":
            self.asciiprecision = float(value)
            return
        c, _, attr = self._split(name)
        if not isinstance(value, float):
            raise TspError(-286, f"TSP Runtime error at line 1: bad value for {name}")
        if attr == "source.levelv":
            if abs(value) > c.rangev * 1.01:
                raise TspError(5007, f"Parameter error; levelv {value:g} beyond range {c.rangev:g}")
            c.levelv = value
        elif attr == "source.rangev":
            if abs(value) > V_RANGES[-1] * 1.01:
                raise TspError(5007, "Parameter error; rangev")
            c.rangev = next(r for r in V_RANGES if r * 1.01 >= abs(value))
        elif attr in ("source.func", "source.leveli", "source.limiti", "source.limitv", "source.output",
                      "measure.nplc", "measure.count", "measure.autorangev"):
            if attr == "measure.count" and not 1 <= value <= 60_000:
                raise TspError(5007, "Parameter error; count")
            if attr == "measure.nplc" and not 0.001 <= value <= 25:
                raise TspError(5007, "Parameter error; nplc")
            setattr(c, {"source.func": "func", "source.leveli": "leveli", "source.limiti": "limiti",
                        "source.limitv": "limitv", "source.output": "output", "measure.nplc": "nplc",
                        "measure.count": "count", "measure.autorangev": "autorangev"}[attr], value)
        else:
            super().set(name, value)

    def _read_v(self, key: str, n: int) -> np.ndarray:
        c = self.ch[key]
        if not c.output:
            raise TspError(5042, f"Cannot perform requested operation while output is off (smu{key})")
        if c.func == 1.0:
            return np.full(n, c.levelv)
        return self.world.read(self.name, [key], n)[:, 0]

    def call(self, name: str, args: list[Any]) -> Any:
        if name.startswith("smu") and "." in name:
            c, key, attr = self._split(name)
            if attr in ("nvbuffer1.clear", "nvbuffer2.clear"):
                c.buffer = []
                return None
            if attr == "measure.v":
                n = int(c.count)
                values = self._read_v(key, n)
                if args and isinstance(args[0], _Buffer) and args[0].what == "buffer":
                    self.ch[args[0].channel].buffer.extend(float(v) for v in values)
                    return None
                return float(values[-1])
            if attr == "measure.i":
                if not c.output:
                    raise TspError(5042, f"Cannot perform requested operation while output is off (smu{key})")
                if self.world is not None and self.world.pulse_smu == (self.name, key) and c.func == 1.0:
                    return self.world.cell_current(c.levelv)
                return 0.0
        if name == "printbuffer":
            return self._printbuffer(args)
        if name == "delay" and self.world is not None and self.world.pulse_smu is not None:
            inst, key = self.world.pulse_smu
            c = self.ch.get(key)
            if inst == self.name and c is not None and c.output and c.func == 1.0 and c.levelv != 0.0:
                self.world.pulse(c.levelv, float(args[0]) if args else 0.0)  # the level held for the delay
            return None
        return super().call(name, args)

    def _printbuffer(self, args: list[Any]) -> None:
        if len(args) < 3:
            raise TspError(-286, "TSP Runtime error at line 1: bad argument #3 to 'printbuffer'")
        start, end = int(args[0]), int(args[1])
        cols = []
        for a in args[2:]:
            if not (isinstance(a, _Buffer) and a.what == "readings"):
                raise TspError(-286, "TSP Runtime error at line 1: bad argument to 'printbuffer'")
            buf = self.ch[a.channel].buffer
            if end > len(buf) or start < 1:
                raise TspError(-286, "TSP Runtime error at line 1: index out of range in 'printbuffer'")
            cols.append(buf[start - 1 : end])
        values = np.array(cols).T.reshape(-1)  # interleaved: reading i of every buffer, then i+1
        if self.format_data == 1.0:
            digits = int(self.asciiprecision)
            self.output.append(", ".join(f"{v:.{max(digits - 1, 0)}e}" for v in values))
        else:
            dt = ("<" if self.byteorder else ">") + ("f4" if self.format_data == 2.0 else "f8")
            self.output.append(b"#0" + values.astype(dt).tobytes())
        return None
