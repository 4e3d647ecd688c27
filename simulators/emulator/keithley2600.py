"""Keithley 2600B System SourceMeter (TSP): two channels, `smua` and `smub`, from the 2600B reference manual.

- `smuX.source.func` (`smuX.OUTPUT_DCVOLTS` 1, `OUTPUT_DCAMPS` 0), `levelv`, `leveli`,
  `rangev`, `rangei`, `autorangev`, `autorangei`, `limitv`, `limiti`, `output`
  (`OUTPUT_ON` 1, `OUTPUT_OFF` 0).  Voltage ranges depend on the model that `*IDN?`
  reports (2601B/2602B/2604B: 0.1/1/6/40 V; 2611B/2612B/2614B/2634B/2635B/2636B:
  0.2/2/20/200 V); a level beyond a fixed range is taken with the output off and refused
  when it goes on, at once with the output on (5005 "Value too big for range"); beyond the
  largest range 1101 "Parameter too big", a limit, count or NPLC below its minimum 1102.
- `smuX.measure.nplc` (0.001..25), `count`, `autozero` (`AUTOZERO_OFF` 0, `ONCE` 1,
  `AUTO` 2: a reference and zero with every reading, which doubles it), `rangev`,
  `rangei`, `autorangev`, `autorangei`, `delay`; `smuX.sense`.
- `smuX.measure.v([buf])`, `.i([buf])`, `.r()`, `.p()`, `.iv([ibuf[, vbuf]])` (returns
  current, voltage): `count` readings each, into the buffers when given (the last
  returned otherwise); sensing current reads the current the load draws when sourcing
  volts, never the source level.  A read with the output off is 5061 ("Operation not
  permitted while OUTPUT is off"); a compliance trip (`trip()`) switches the outputs off and
  queues 5062 ("SMU overload. Automatic OUTPUT off.", SERIOUS).
- Reading buffers `smuX.nvbuffer1`/`2`: `.n`, `.capacity`, `.readings`, `.sourcevalues`,
  `.timestamps` (emulated seconds), `.appendmode`, `.collectsourcevalues`,
  `.collecttimestamps`, `.clear()`, `buf[i]` (1-based reading).
- `printbuffer(start, end, buf, ...)` prints buffers interleaved, in `format.data`
  (`format.ASCII`, or `format.REAL32` / `REAL64` as `#0` and the bytes in `format.byteorder`);
  `smuX.reset()`, `reset()`; `localnode.model`, `.linefreq` and `errorqueue` come from `tsp.py`,
  each queued code with its level from the manual's error summary list (`ERROR_LEVELS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hil.simulators.emulator.readings import auto_range, overload
from hil.simulators.emulator.timing import reading_s
from hil.simulators.emulator.tsp import RECOVERABLE, SERIOUS, TspError, TspInstrument
from hil.simulators.emulator.world import UnmodelledPulse

CONSTANTS = {
    "OUTPUT_DCAMPS": 0.0, "OUTPUT_DCVOLTS": 1.0, "OUTPUT_OFF": 0.0, "OUTPUT_ON": 1.0, "OUTPUT_HIGH_Z": 2.0,
    "AUTORANGE_OFF": 0.0, "AUTORANGE_ON": 1.0, "ENABLE": 1.0, "DISABLE": 0.0, "AUTOZERO_OFF": 0.0,
    "AUTOZERO_ONCE": 1.0, "AUTOZERO_AUTO": 2.0, "SENSE_LOCAL": 0.0, "SENSE_REMOTE": 1.0, "SENSE_CALA": 3.0,
    "DELAY_AUTO": -1.0, "DELAY_OFF": 0.0,
}
FORMAT = {"format.ASCII": 1.0, "format.SREAL": 2.0, "format.REAL": 3.0, "format.REAL32": 2.0,
          "format.REAL64": 3.0, "format.NORMAL": 0.0, "format.BIGENDIAN": 0.0, "format.NETWORK": 0.0,
          "format.SWAPPED": 1.0, "format.LITTLEENDIAN": 1.0}
V_RANGES = {"2601B": (0.1, 1.0, 6.0, 40.0), "2602B": (0.1, 1.0, 6.0, 40.0), "2604B": (0.1, 1.0, 6.0, 40.0),
            "2611B": (0.2, 2.0, 20.0, 200.0), "2612B": (0.2, 2.0, 20.0, 200.0), "2614B": (0.2, 2.0, 20.0, 200.0),
            "2634B": (0.2, 2.0, 20.0, 200.0), "2635B": (0.2, 2.0, 20.0, 200.0), "2636B": (0.2, 2.0, 20.0, 200.0)}
I_RANGES = (1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.5)
ATTRS = {"source.func": "func", "source.levelv": "levelv", "source.leveli": "leveli", "source.rangev": "rangev",
         "source.rangei": "rangei", "source.autorangev": "src_autov", "source.autorangei": "src_autoi",
         "source.limitv": "limitv", "source.limiti": "limiti", "source.output": "output",
         "measure.nplc": "nplc", "measure.count": "count", "measure.autozero": "autozero",
         "measure.rangev": "mrangev", "measure.rangei": "mrangei", "measure.autorangev": "autorangev",
         "measure.autorangei": "autorangei", "measure.delay": "mdelay", "sense": "sense"}
BUFFER_ATTRS = ("appendmode", "collectsourcevalues", "collecttimestamps")
#: the error summary list's level of every code the emulated 2600B queues
ERROR_LEVELS = {-350: RECOVERABLE, -286: RECOVERABLE, -285: RECOVERABLE, -224: RECOVERABLE, 1101: RECOVERABLE,
                1102: RECOVERABLE, 1405: RECOVERABLE, 1406: RECOVERABLE, 5005: RECOVERABLE, 5061: RECOVERABLE,
                5062: SERIOUS}


class NvBuffer:
    """A reading buffer: readings, source values and timestamps."""

    capacity = 100_000

    def __init__(self, channel: str, name: str) -> None:
        self.channel, self.name = channel, name
        self.appendmode, self.collectsourcevalues, self.collecttimestamps = 0.0, 0.0, 1.0
        self.clear()

    def clear(self) -> None:
        self.readings: list[float] = []
        self.sourcevalues: list[float] = []
        self.timestamps: list[float] = []

    def add(self, readings: np.ndarray, source: float, times: np.ndarray) -> None:
        if not self.appendmode:
            self.clear()
        self.readings = (self.readings + [float(v) for v in readings])[-self.capacity :]
        self.sourcevalues = (self.sourcevalues + [source] * len(readings))[-self.capacity :]
        self.timestamps = (self.timestamps + [float(t) for t in times])[-self.capacity :]


class Column:
    """`buf.readings`, `.sourcevalues` or `.timestamps` named in an expression."""

    def __init__(self, buffer: NvBuffer, what: str) -> None:
        self.buffer, self.what = buffer, what

    def values(self) -> list[float]:
        return getattr(self.buffer, self.what)


class Channel:
    def __init__(self, key: str, v_top: float) -> None:
        self.func, self.levelv, self.leveli, self.rangev, self.rangei = 1.0, 0.0, 0.0, v_top, 1e-4
        self.src_autov = self.src_autoi = 1.0
        self.limitv, self.limiti, self.output = v_top, 1e-4, 0.0
        self.nplc, self.count, self.autozero, self.mdelay, self.sense = 1.0, 1.0, 2.0, -1.0, 0.0
        self.mrangev, self.mrangei, self.autorangev, self.autorangei = v_top, 1e-4, 1.0, 1.0
        self.buffers = {"nvbuffer1": NvBuffer(key, "nvbuffer1"), "nvbuffer2": NvBuffer(key, "nvbuffer2")}


class Keithley2600(TspInstrument):
    kind = "keithley2600"
    queue_size = 32
    error_levels = ERROR_LEVELS

    def __init__(self, name: str, world: Any = None, model: str = "2636B", **kwargs: Any) -> None:
        if model not in V_RANGES:
            raise ValueError(f"unknown 2600B model {model!r} (have {', '.join(V_RANGES)})")
        self.model_name, self.v_ranges = model, V_RANGES[model]
        self.idn = f"Keithley Instruments Inc., Model {model}, EMU0001, 3.2.2"
        super().__init__(name, world, **kwargs)

    def reset(self) -> None:
        self.ch = {k: Channel(k, self.v_ranges[-1]) for k in ("a", "b")}
        self.format_data, self.byteorder = 1.0, 1.0

    def source_level(self, channel: str) -> float:
        c = self.ch.get(channel)
        return c.levelv if c is not None and c.output == 1.0 and c.func == 1.0 else 0.0

    def outputs_on(self) -> dict[str, bool]:
        return {k: bool(c.output) for k, c in self.ch.items()}

    def levels(self) -> dict[str, float]:
        return {k: c.levelv for k, c in self.ch.items()}

    def trip(self) -> None:
        with self.lock:
            for c in self.ch.values():
                c.output = 0.0
                c.levelv = 0.0
            self.push_error(5062, "SMU overload. Automatic OUTPUT off.")

    def _split(self, name: str) -> tuple[Channel, str, str]:
        parts = name.split(".", 1)
        if not parts[0].startswith("smu") or parts[0][3:] not in self.ch or len(parts) < 2:
            raise TspError(-286, f"TSP Runtime error at line 1: attempt to index a nil value ({name})")
        return self.ch[parts[0][3:]], parts[0][3:], parts[1]

    # --- attributes -------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        if name in FORMAT:
            return FORMAT[name]
        if name in ("format.data", "format.byteorder"):
            return self.format_data if name == "format.data" else self.byteorder
        if not name.startswith("smu"):
            return super().get(name)
        c, _, attr = self._split(name)
        if attr in CONSTANTS:
            return CONSTANTS[attr]
        if attr in ATTRS:
            return getattr(c, ATTRS[attr])
        buf, _, field = attr.partition(".")
        if buf in c.buffers:
            b = c.buffers[buf]
            if not field:
                return b
            if field in ("readings", "sourcevalues", "timestamps"):
                return Column(b, field)
            if field == "n":
                return float(len(b.readings))
            if field == "capacity":
                return float(b.capacity)
            if field in BUFFER_ATTRS:
                return getattr(b, field)
        return super().get(name)

    def set(self, name: str, value: Any) -> None:
        if name in ("format.data", "format.byteorder"):
            if name == "format.data" and value not in (1.0, 2.0, 3.0):
                raise TspError(1406, "Invalid data format")
            setattr(self, "format_data" if name == "format.data" else "byteorder", float(value))
            return
        if not name.startswith("smu"):
            super().set(name, value)
            return
        c, _, attr = self._split(name)
        if not isinstance(value, float):
            raise TspError(-286, f"TSP Runtime error at line 1: bad value for {name}")
        buf, _, field = attr.partition(".")
        if buf in c.buffers and field in BUFFER_ATTRS:
            setattr(c.buffers[buf], field, value)
            return
        if attr not in ATTRS:
            super().set(name, value)
            return
        self._check(c, attr, value)
        setattr(c, ATTRS[attr], value)

    def _check(self, c: Channel, attr: str, value: float) -> None:
        """Refuse what the instrument refuses (its error summary list's codes), and move ranges as autorange would.

        A level beyond a fixed source range is taken while the output is off and refused when it goes
        on (reference manual, "Range considerations"): 5005 either way.
        """
        top = self.v_ranges[-1]
        if attr in ("source.levelv", "source.leveli"):
            volts = attr == "source.levelv"
            auto, rng, ranges = (c.src_autov, c.rangev, self.v_ranges) if volts else (c.src_autoi, c.rangei, I_RANGES)
            if abs(value) > ranges[-1] * 1.01:
                raise TspError(1101, f"Parameter too big; {attr} {value:g} above {ranges[-1]:g}")
            if auto:
                if volts:
                    c.rangev = auto_range(value, self.v_ranges, 1.01)
            elif c.output and c.func == float(volts) and abs(value) > rng * 1.01:
                raise TspError(5005, f"Value too big for range; {attr} {value:g} on the {rng:g} range")
        elif attr in ("source.rangev", "measure.rangev"):
            if abs(value) > top * 1.01:
                raise TspError(1101, f"Parameter too big; {attr} {value:g} above {top:g} V")
            c.src_autov = 0.0 if attr == "source.rangev" else c.src_autov
        elif attr in ("source.limitv", "source.limiti") and value <= 0:
            raise TspError(1102, f"Parameter too small; {attr} {value:g}")
        elif attr in ("measure.count", "measure.nplc"):
            lo, hi = (1, 60_000) if attr == "measure.count" else (0.001, 25)
            if value < lo or value > hi:
                code, what = (1102, "small") if value < lo else (1101, "big")
                raise TspError(code, f"Parameter too {what}; {attr} {value:g} ({lo:g} to {hi:g})")
        elif attr in ("measure.autozero", "source.output") and value not in (0.0, 1.0, 2.0):
            raise TspError(-224, f"Illegal parameter value; {attr} {value:g}")
        elif attr == "source.output" and value == 1.0:
            level, rng = (c.levelv, c.rangev) if c.func == 1.0 else (c.leveli, c.rangei)
            if abs(level) > rng * 1.01:
                raise TspError(5005, f"Value too big for range; level {level:g} on the {rng:g} range, output kept off")

    def index(self, value: Any, key: Any) -> Any:
        values = value.readings if isinstance(value, NvBuffer) else value.values() if isinstance(value, Column) \
            else None
        if values is None or not isinstance(key, float):
            return super().index(value, key)
        i = int(key)
        return values[i - 1] if 1 <= i <= len(values) else None

    # --- measurements -------------------------------------------------------------------------------
    def _values(self, key: str, what: str, n: int) -> np.ndarray:
        """n readings of `what` ("v" or "i") on channel `key`, ranged (+9.9E+37 beyond a fixed range)."""
        c = self.ch[key]
        if c.output != 1.0:
            raise TspError(5061, f"Operation not permitted while OUTPUT is off (smu{key})")
        if what == "v":
            if c.func == 1.0:
                values = np.full(n, c.levelv)
            else:
                values = self.world.read(self.name, [key], n)[:, 0] if self.world is not None else np.zeros(n)
            rng = c.rangev if c.func == 1.0 else (self.v_ranges[-1] if c.autorangev else c.mrangev)
            return overload(values, rng, 1.01)
        if c.func == 0.0:
            return np.full(n, c.leveli)
        i = self.world.current(self.name, key, c.levelv) if self.world is not None else 0.0
        return overload(np.full(n, i), I_RANGES[-1] if c.autorangei else c.mrangei, 1.01)

    def _measure(self, key: str, whats: str, bufs: list[Any]) -> Any:
        c = self.ch[key]
        n = int(c.count)
        per = reading_s(self.kind, c.nplc, self.line_hz, c.autozero == 2.0) * len(whats)
        start = self.clock.now()
        values = {w: self._values(key, w, n) for w in whats}
        self.work(n * per)
        times = start + per * np.arange(1, n + 1)
        for w, buf in zip(whats, bufs):
            if isinstance(buf, NvBuffer):
                buf.add(values[w], c.levelv if c.func == 1.0 else c.leveli, times)
        last = tuple(float(values[w][-1]) for w in whats)
        return last if len(last) > 1 else last[0]

    def call(self, name: str, args: list[Any]) -> Any:
        if name.startswith("smu") and "." in name:
            c, key, attr = self._split(name)
            buf, _, method = attr.partition(".")
            if buf in c.buffers and method == "clear":
                c.buffers[buf].clear()
                return None
            if attr in ("measure.v", "measure.i", "measure.iv"):
                return self._measure(key, attr.split(".")[1], args)
            if attr in ("measure.r", "measure.p"):
                v, i = self._measure(key, "vi", [])
                return (v / i if i else 9.91e37) if attr == "measure.r" else v * i
            if attr == "reset":
                self.ch[key] = Channel(key, self.v_ranges[-1])
                return None
        if name == "printbuffer":
            return self._printbuffer(args)
        if name == "delay" and self.world is not None and self.world.pulse_smu is not None:
            inst, key = self.world.pulse_smu
            c = self.ch.get(key)
            if inst == self.name and c is not None and c.output and c.func == 1.0 and c.levelv != 0.0:
                try:
                    self.world.pulse(c.levelv, float(args[0]) if args else 0.0)  # the level held for the delay
                except UnmodelledPulse as exc:  # queued as a script error is; the line still ends at 0 V
                    self.push_error(-286, f"TSP Runtime error at line 1: emulator: {exc}")
        return super().call(name, args)

    def _printbuffer(self, args: list[Any]) -> None:
        if len(args) < 3 or not all(isinstance(a, float) for a in args[:2]):
            raise TspError(-286, "TSP Runtime error at line 1: bad argument #3 to 'printbuffer'")
        start, end = int(args[0]), int(args[1])
        cols = []
        for a in args[2:]:
            if not isinstance(a, (NvBuffer, Column)):
                raise TspError(-286, "TSP Runtime error at line 1: bad argument to 'printbuffer'")
            values = a.readings if isinstance(a, NvBuffer) else a.values()
            if end > len(values) or start < 1 or start > end:
                raise TspError(-286, "TSP Runtime error at line 1: index out of range in 'printbuffer'")
            cols.append(values[start - 1 : end])
        values = np.array(cols).T.reshape(-1)  # interleaved: reading i of every buffer, then i+1
        if self.format_data == 1.0:
            digits = int(self.asciiprecision)
            self.output.append(", ".join(f"{v:.{max(digits - 1, 0)}e}" for v in values))
        else:
            dt = ("<" if self.byteorder else ">") + ("f4" if self.format_data == 2.0 else "f8")
            self.output.append(b"#0" + values.astype(dt).tobytes())
        return None
