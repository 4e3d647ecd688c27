"""The HIL-EP conductance board (GBOARD), implemented from `drivers/board_scpi.md`.

Digital potentiometers / transistors hold the blocks (`G<l>` in S, `b<l>` bias
currents in A); DAC channels drive the input and nudge nodes.  As the dialect says:
commands are case-sensitive as written, one per line (no `;` chaining); an unknown
command queues -100; a value outside `G:RANG?` or a DAC beyond the board's range
-222; a block of the wrong length -223 (too much data) or -109 (missing parameter);
an unknown block -224; more than 16 errors -350.  A command that cannot be carried
out changes nothing.  `*RST` puts every cell at g_min, every DAC at 0 V, the
outputs and the nudge off.  With the outputs off the nodes see 0 V.  A lost host
link for more than 2 s (no connection left) trips the watchdog: DACs to 0 V, outputs
and nudge off.  A current trip (`trip()`, fault injection) does the same and queues
+310 "DAC current limit; outputs off".
"""

from __future__ import annotations

import threading
import time

import numpy as np

from hil.simulators.emulator.errors import DATA_OUT_OF_RANGE, ILLEGAL_VALUE, ScpiError, err
from hil.simulators.emulator.params import block_data, boolean, definite_block, number, split_params, text
from hil.simulators.emulator.scpi import Instrument

COMMANDS = {
    "*IDN?": "_idn", "*RST": "_rst", "*CLS": "_cls", "SYST:ERR?": "_syst_err", "BLK:CAT?": "_cat",
    "G:RANG?": "_range", "G:SET": "_g_set", "G:GET?": "_g_get", "G:SET:ASC": "_g_set_asc",
    "G:GET:ASC?": "_g_get_asc", "SOUR:VOLT:COUN?": "_count", "SOUR:VOLT:BLK": "_blk",
    "SOUR:VOLT:ASC": "_asc", "SOUR:VOLT:ASC?": "_asc_q", "OUTP": "_outp", "NUDG:G": "_nudge_g",
    "NUDG:STAT": "_nudge_stat",
}


class ConductanceBoard(Instrument):
    kind = "conductance_board"
    queue_size = 16
    dac_v_max = 10.0
    watchdog_s = 2.0
    no_error = '0,"No error"'
    error_format = '{code:d},"{message}"'

    def __init__(self, name: str, world, dacs: int, serial: int = 1) -> None:
        self.dacs = dacs
        super().__init__(name, world)
        self.idn = f"HIL-EP,GBOARD-{dacs},EMU{serial:04d},1.0"

    def execute(self, message: bytes) -> bytes | None:
        """One command per line, headers exactly as the dialect writes them."""
        self.commands_seen += 1
        head, _, rest = message.strip().partition(b" ")
        name = COMMANDS.get(head.decode("latin-1"))
        if name is None:
            self.push_error(-100, "Command error")
            return None
        try:
            reply = getattr(self, name)(rest.strip())
        except ScpiError as exc:
            self.push_error(exc.code, exc.message)
            return None
        if reply is None:
            return None
        return (reply if isinstance(reply, bytes) else str(reply).encode("latin-1")) + b"\n"

    # --- the watchdog -----------------------------------------------------------------------------
    def link_up(self) -> None:
        with self.lock:
            self._links += 1
            self._lost_since = None

    def link_down(self) -> None:
        with self.lock:
            self._links = max(0, self._links - 1)
            if self._links == 0:
                self._lost_since = time.monotonic()
                t = threading.Timer(self.watchdog_s, self._watchdog)
                t.daemon = True
                t.start()

    def _watchdog(self) -> None:
        with self.lock:
            if self._lost_since is not None and time.monotonic() - self._lost_since >= self.watchdog_s * 0.99:
                self.dac[:] = 0.0
                self.output = False
                self.nudge_on = False
                self.watchdog_trips += 1

    def reset(self) -> None:
        if not hasattr(self, "_links"):
            self._links, self._lost_since, self.watchdog_trips = 0, None, 0
        self.dac = np.zeros(self.dacs)
        self.output = False
        self.nudge_g = 0.0
        self.nudge_on = False
        if self.world is not None:
            self.world.power_on_conductances()

    # physics hooks
    def source_level(self, channel: str) -> float:
        i = int(channel)
        return float(self.dac[i]) if self.output and 0 <= i < self.dacs else 0.0

    def nudge_beta_s(self) -> float:
        return self.nudge_g if (self.nudge_on and self.output) else 0.0

    def outputs_on(self) -> dict[str, bool]:
        return {"output": self.output, "nudge": self.nudge_on}

    def levels(self) -> dict[str, float]:
        return {str(i): float(v) for i, v in enumerate(self.dac)}

    def trip(self) -> None:
        with self.lock:
            self.output = False
            self.nudge_on = False
            self.dac[:] = 0.0
            self.push_error(310, "DAC current limit; outputs off")

    # --- commands ---------------------------------------------------------------------------------
    def _cat(self, raw: bytes) -> str:
        return ";".join(f"{b}," + ",".join(str(d) for d in shape) for b, shape in self.world.block_shapes().items())

    def _range(self, raw: bytes) -> str:
        lim = self.world.station.limits
        return f"{lim.g_min_s:.6E},{lim.g_max_s:.6E}"

    def _set(self, block: str, values: np.ndarray) -> None:
        shapes = self.world.block_shapes()
        if block not in shapes:
            raise err(ILLEGAL_VALUE, f"no block {block}")
        want = int(np.prod(shapes[block]))
        if values.size > want:
            raise ScpiError(-223, f"Too much data; {block} holds {want} values")
        if values.size < want:
            raise ScpiError(-109, f"Missing parameter; {block} holds {want} values")
        if not np.all(np.isfinite(values)):
            raise err(DATA_OUT_OF_RANGE, "non-finite value")
        if self.world.block_names[block].startswith("G"):
            lim = self.world.station.limits
            if np.any(values < lim.g_min_s * (1 - 1e-6)) or np.any(values > lim.g_max_s * (1 + 1e-6)):
                raise err(DATA_OUT_OF_RANGE, f"{block} outside the cell range")
        self.world.set_block(block, values.reshape(shapes[block]))

    def _g_set(self, raw: bytes) -> None:
        name, _, data = raw.partition(b",")
        self._set(name.decode("latin-1").strip(), np.frombuffer(block_data(data.strip()), "<f4").astype(float))

    def _g_set_asc(self, raw: bytes) -> None:
        params = split_params(text(raw))
        if len(params) < 2:
            raise err(ILLEGAL_VALUE, "G:SET:ASC <block>,v,...")
        try:
            values = np.array([float(v) for v in params[1:]])
        except ValueError:
            raise ScpiError(-104, "Data type error") from None
        self._set(params[0], values)

    def _get(self, raw: bytes) -> np.ndarray:
        block = text(raw)
        if block not in self.world.block_shapes():
            raise err(ILLEGAL_VALUE, f"no block {block}")
        return self.world.get_block(block).reshape(-1)

    def _g_get(self, raw: bytes) -> bytes:
        return definite_block(self._get(raw).astype("<f4").tobytes())

    def _g_get_asc(self, raw: bytes) -> str:
        return ",".join(f"{v:.7E}" for v in self._get(raw))

    def _count(self, raw: bytes) -> str:
        return str(self.dacs)

    def _levels(self, values: np.ndarray) -> None:
        if values.size > self.dacs:
            raise ScpiError(-223, f"Too much data; {self.dacs} DAC levels")
        if values.size < self.dacs:
            raise ScpiError(-109, f"Missing parameter; {self.dacs} DAC levels")
        if not np.all(np.isfinite(values)) or np.any(np.abs(values) > self.dac_v_max):
            raise err(DATA_OUT_OF_RANGE, f"DAC levels beyond ±{self.dac_v_max:g} V")
        self.dac = values.astype(float)

    def _blk(self, raw: bytes) -> None:
        self._levels(np.frombuffer(block_data(raw.strip()), "<f4").astype(float))

    def _asc(self, raw: bytes) -> None:
        try:
            values = np.array([float(v) for v in split_params(text(raw))])
        except ValueError:
            raise ScpiError(-104, "Data type error") from None
        self._levels(values)

    def _asc_q(self, raw: bytes) -> str:
        return ",".join(f"{v:g}" for v in self.dac)

    def _outp(self, raw: bytes) -> None:
        self.output = boolean(text(raw))

    def _nudge_g(self, raw: bytes) -> None:
        lim = self.world.station.limits
        self.nudge_g = number(text(raw), lim.g_min_s, lim.g_max_s)

    def _nudge_stat(self, raw: bytes) -> None:
        self.nudge_on = boolean(text(raw))

