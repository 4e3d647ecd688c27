"""The HIL-EP conductance board (GBOARD): digital potentiometers / transistors and DAC sources.

The dialect (see `hil.drivers.hilep_conductance_board` for the commands a host sends):

    *IDN?                         HIL-EP,GBOARD-<dacs>,EMU<nnnn>,1.0
    BLK:CAT?                      <block>,<rows>[,<cols>];...   every block and its shape
    G:RANG?                       <g_min>,<g_max>               cell range (S)
    G:SET <block>,#<definite>     whole block, float32 little-endian, row-major (S; A for bias blocks)
    G:SET:ASC <block>,v,v,...     the same in ASCII
    G:GET? <block> / G:GET:ASC? <block>   what the cells hold
    SOUR:VOLT:COUN?               number of DAC channels
    SOUR:VOLT:BLK #<definite>     every DAC level at once (float32 LE, V)
    SOUR:VOLT:ASC v,v,... / SOUR:VOLT:ASC?
    OUTP ON|OFF / OUTP?           DAC output relays (off: the nodes are tied to ground, 0 V)
    NUDG:G <S> / NUDG:G?          conductance tying each output node to its nudge source
    NUDG:STAT ON|OFF / NUDG:STAT? nudge conductances connected
    SYST:ERR?, *ESR?, *CLS, *RST, *OPC?

A value outside a DAC's ±`dac_v_max`, a cell outside [g_min, g_max], a block of the
wrong size or an unknown block is refused whole (nothing changes) with -222, -224 or
-160 in the queue.  A DAC current trip (`trip()`) opens the output relays, disconnects
the nudge, sets every DAC to 0 V and queues `+310,"DAC current limit; outputs off"`.
"""

from __future__ import annotations

import numpy as np

from hil.simulators.emulator.scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_VALUE,
    Instrument,
    ScpiError,
    block_data,
    boolean,
    definite_block,
    err,
    number,
    scpi,
    split_params,
    text,
)


class ConductanceBoard(Instrument):
    kind = "conductance_board"
    queue_size = 16
    dac_v_max = 10.0

    def __init__(self, name: str, world, dacs: int, serial: int = 1) -> None:
        self.dacs = dacs
        super().__init__(name, world)
        self.idn = f"HIL-EP,GBOARD-{dacs},EMU{serial:04d},1.0"

    def reset(self) -> None:
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
    @scpi("BLK:CATalog?")
    def _cat(self, raw: bytes) -> str:
        return ";".join(f"{b}," + ",".join(str(d) for d in shape) for b, shape in self.world.block_shapes().items())

    @scpi("G:RANGe?")
    def _range(self, raw: bytes) -> str:
        lim = self.world.station.limits
        return f"{lim.g_min_s:.6E},{lim.g_max_s:.6E}"

    def _set(self, block: str, values: np.ndarray) -> None:
        shapes = self.world.block_shapes()
        if block not in shapes:
            raise err(ILLEGAL_VALUE, f"no block {block}")
        if values.size != int(np.prod(shapes[block])):
            raise ScpiError(-160, f"Block data error; {block} holds {int(np.prod(shapes[block]))} values")
        if not np.all(np.isfinite(values)):
            raise err(DATA_OUT_OF_RANGE, "non-finite value")
        if self.world.block_names[block].startswith("G"):
            lim = self.world.station.limits
            if np.any(values < lim.g_min_s * (1 - 1e-6)) or np.any(values > lim.g_max_s * (1 + 1e-6)):
                raise err(DATA_OUT_OF_RANGE, f"{block} outside the cell range")
        self.world.set_block(block, values.reshape(shapes[block]))

    @scpi("G:SET")
    def _g_set(self, raw: bytes) -> None:
        name, _, data = raw.partition(b",")
        self._set(name.decode("latin-1").strip(), np.frombuffer(block_data(data.strip()), "<f4").astype(float))

    @scpi("G:SET:ASCii")
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

    @scpi("G:GET?")
    def _g_get(self, raw: bytes) -> bytes:
        return definite_block(self._get(raw).astype("<f4").tobytes())

    @scpi("G:GET:ASCii?")
    def _g_get_asc(self, raw: bytes) -> str:
        return ",".join(f"{v:.7E}" for v in self._get(raw))

    @scpi("SOURce:VOLTage:COUNt?")
    def _count(self, raw: bytes) -> str:
        return str(self.dacs)

    def _levels(self, values: np.ndarray) -> None:
        if values.size != self.dacs:
            raise ScpiError(-160, f"Block data error; {self.dacs} DAC levels expected, got {values.size}")
        if not np.all(np.isfinite(values)) or np.any(np.abs(values) > self.dac_v_max):
            raise err(DATA_OUT_OF_RANGE, f"DAC levels beyond ±{self.dac_v_max:g} V")
        self.dac = values.astype(float)

    @scpi("SOURce:VOLTage:BLK")
    def _blk(self, raw: bytes) -> None:
        self._levels(np.frombuffer(block_data(raw.strip()), "<f4").astype(float))

    @scpi("SOURce:VOLTage:ASCii")
    def _asc(self, raw: bytes) -> None:
        try:
            values = np.array([float(v) for v in split_params(text(raw))])
        except ValueError:
            raise ScpiError(-104, "Data type error") from None
        self._levels(values)

    @scpi("SOURce:VOLTage:ASCii?")
    def _asc_q(self, raw: bytes) -> str:
        return ",".join(f"{v:g}" for v in self.dac)

    @scpi("OUTPut[:STATe]")
    def _outp(self, raw: bytes) -> None:
        self.output = boolean(text(raw))

    @scpi("OUTPut[:STATe]?")
    def _outp_q(self, raw: bytes) -> str:
        return "1" if self.output else "0"

    @scpi("NUDGe:G")
    def _nudge_g(self, raw: bytes) -> None:
        lim = self.world.station.limits
        self.nudge_g = number(text(raw), lim.g_min_s, lim.g_max_s)

    @scpi("NUDGe:G?")
    def _nudge_g_q(self, raw: bytes) -> str:
        return f"{self.nudge_g:.6E}"

    @scpi("NUDGe:STATe")
    def _nudge_stat(self, raw: bytes) -> None:
        self.nudge_on = boolean(text(raw))

    @scpi("NUDGe:STATe?")
    def _nudge_stat_q(self, raw: bytes) -> str:
        return "1" if self.nudge_on else "0"
