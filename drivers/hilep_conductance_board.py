"""A digital-potentiometer / transistor conductance board speaking the dialect of `board_scpi.md`.

Whole blocks are written in one command (`G:SET <block>,<IEEE block>`, float32
little-endian, row-major) and read back the same way (`G:GET? <block>`), over a
serial line or TCP.  The board's DAC channels drive the input and nudge nodes; all
of them are set by one `SOUR:VOLT:BLK` command.  `transfer: ascii` in the station
uses the comma-separated variants (`G:SET:ASC`, `G:GET:ASC?`, `SOUR:VOLT:ASC`) for
terminals and simulators that cannot carry binary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from hil.drivers.base import InstrumentError, SafeInstrument, ieee_block, parse_ascii, ramp_steps, read_binary
from hil.drivers.timing import InstrumentTiming

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class ConductanceBoardTiming(InstrumentTiming):
    """The board (`board_scpi.md`): no readings of its own; blocks and levels are bytes on its link.

    LAN about 1 MB/s; on a serial line `timing_for` uses the station's `baud_rate` / 10 (115200 baud:
    11.5 kB/s); float32 values.
    """
    autozero: bool = False

    def estimate_read_s(self, n_samples: int, n_channels: int = 1) -> float:
        raise ValueError("the conductance board drives nodes; it takes no readings")

    def program_s(self, n_values: int, verify: bool = True) -> float:
        """Writing one block of n float32 values (`G:SET`, error check) and reading it back (`G:GET?`)."""
        one = self.command_s + (4 * n_values + self.header_bytes) / self.link_bytes_per_s
        return 2 * one + self.command_s if verify else one + self.command_s

    def levels_s(self, n_dacs: int) -> float:
        """One `SOUR:VOLT:BLK` of every DAC level."""
        return self.estimate_write_s(4 * n_dacs + self.header_bytes)


class ConductanceBoard(SafeInstrument, SCPIMixin, Instrument):
    """Conductance board: bulk block writes and read-back, DAC sources, nudge conductances."""

    output_enabled = Instrument.setting(
        "OUTP %s",
        """Set the DAC output relays on (True) or off (False).""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
    )
    nudge_conductance = Instrument.setting(
        "NUDG:G %g",
        """Set the conductance tying every output node to its nudge source (float, S, strictly in the
        station's conductance range).""",
        validator=strict_range,
        values=[0.0, 1.0],
        dynamic=True,
    )
    nudge_enabled = Instrument.setting(
        "NUDG:STAT %s",
        """Set the nudge conductances connected (True) or disconnected (False).""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
    )
    dac_count = Instrument.measurement(
        "SOUR:VOLT:COUN?",
        """Get the number of DAC channels (int).""",
        cast=int,
    )
    conductance_range = Instrument.measurement(
        "G:RANG?",
        """Get the conductance range of the cells, [g_min, g_max] (list of float, S).""",
    )

    def __init__(self, adapter, name: str = "Conductance board", binary: bool = True, **kwargs) -> None:
        super().__init__(adapter, name, **kwargs)
        self._init_safe()
        self.binary = binary
        self.dac = np.zeros(0)
        self.v_max = 0.0
        self.blocks: dict[str, tuple[int, ...]] = {}
        self.timing = ConductanceBoardTiming(bytes_per_reading=4.0 if binary else 15.0)

    def catalog(self) -> dict[str, tuple[int, ...]]:
        """Get the blocks the board holds and their shapes (BLK:CAT?)."""
        reply = self.ask("BLK:CAT?").strip()
        out: dict[str, tuple[int, ...]] = {}
        for item in filter(None, reply.split(";")):
            name, *dims = item.split(",")
            try:
                out[name.strip()] = tuple(int(d) for d in dims)
            except ValueError:
                raise InstrumentError(f"{self.name}: unreadable block catalog {reply!r}") from None
        return out

    def configure(self) -> None:
        """Learn the blocks and the DAC count; every DAC at 0 V."""
        self.blocks = self.catalog()
        self.dac = np.zeros(int(self.dac_count))
        self.raise_errors("configure")

    def configure_source(self, channels: list[str], v_max: float, compliance_a: float) -> None:
        """DAC channels as voltage sources within ±v_max, at 0 V, outputs on."""
        for ch in channels:
            self._index(ch)
            self.last_levels[ch] = 0.0
        self.v_max = v_max
        self._send_levels(self.dac)
        self.output_enabled = True
        self.raise_errors("configure_source")

    def configure_nudge(self, g_min_s: float, g_max_s: float) -> None:
        self.nudge_conductance_values = [g_min_s, g_max_s]
        self.nudge_enabled = False

    def _index(self, ch: str) -> int:
        try:
            i = int(ch)
        except ValueError:
            raise ValueError(f"{self.name}: DAC channel {ch!r} is not a number") from None
        if not 0 <= i < self.dac.size:
            raise ValueError(f"{self.name}: no DAC channel {i} (0..{self.dac.size - 1})")
        return i

    def _levels_command(self, levels: np.ndarray) -> bytes:
        if self.binary:
            return b"SOUR:VOLT:BLK " + ieee_block(levels) + b"\n"
        return ("SOUR:VOLT:ASC " + ",".join(f"{v:g}" for v in levels)).encode()

    def _send_levels(self, levels: np.ndarray) -> None:
        if np.any(np.abs(levels) > self.v_max):
            raise ValueError(f"{self.name}: DAC levels beyond ±{self.v_max:g} V")
        cmd = self._levels_command(levels)
        if self.binary:
            self.write_bytes(cmd)
        else:
            self.write(cmd.decode())

    def apply_levels(self, levels: dict[str, float]) -> None:
        """Set DAC channels; the whole DAC vector goes out as one command."""
        new = self.dac.copy()
        for ch, v in levels.items():
            new[self._index(ch)] = v
        self._send_levels(new)
        self.dac = new
        self.last_levels.update(levels)

    def set_block(self, block: str, values: np.ndarray) -> None:
        """Write a whole block (S, or A for bias blocks) in one command, then check the error queue."""
        values = np.asarray(values, dtype=np.float64)
        if block not in self.blocks:
            raise ValueError(f"{self.name}: no block {block!r} (has {', '.join(self.blocks)})")
        if tuple(values.shape) != self.blocks[block]:
            raise ValueError(f"{self.name}: block {block} has shape {self.blocks[block]}, got {values.shape}")
        flat = values.reshape(-1)
        if self.binary:
            self.write_bytes(f"G:SET {block},".encode() + ieee_block(flat) + b"\n")
        else:
            self.write(f"G:SET:ASC {block}," + ",".join(f"{v:.7g}" for v in flat))
        with self.timeout_for(self.timing.program_s(flat.size, verify=False)):  # the block is parsed before the reply
            self.raise_errors(f"G:SET {block}")

    def get_block(self, block: str) -> np.ndarray:
        """Read a whole block back as the board holds it (one query)."""
        if block not in self.blocks:
            raise ValueError(f"{self.name}: no block {block!r}")
        shape = self.blocks[block]
        n = int(np.prod(shape))
        with self.timeout_for(self.timing.estimate_write_s(4 * n if self.binary else 15 * n)):
            if self.binary:
                self.write(f"G:GET? {block}")
                values = read_binary(self, "<f4", n)
            else:
                values = parse_ascii(self.ask(f"G:GET:ASC? {block}"), n, self.name)
        return values.reshape(shape)

    def levels_lost(self) -> bool:
        """Whether the DACs hold other levels than were sent: a write lost with the link, or the watchdog
        (`board_scpi.md`: a host link lost for over 2 s puts every DAC at 0 V and the outputs off, and
        keeps the blocks).

        With every level sent at 0 V a watchdog trip cannot be seen here (the dialect has no `OUTP?`).
        """
        n = self.dac.size
        if not n:
            return False
        with self.timeout_for(self.timing.estimate_write_s(15 * n)):
            held = parse_ascii(self.ask("SOUR:VOLT:ASC?"), n, self.name)
        return bool(np.any(np.abs(held - self.dac) > 1e-3 + 1e-3 * np.abs(self.dac)))

    def ramp_down_commands(self, max_step: float) -> Iterator[bytes | str]:
        start = self.dac.copy()
        if not start.size or not np.any(start):
            return
        n = len(ramp_steps(float(np.max(np.abs(start))), 0.0, max_step))
        for k in range(1, n + 1):
            cmd = self._levels_command(start * (1 - k / n) + 0.0 if k < n else np.zeros_like(start))
            yield cmd if self.binary else cmd.decode()

    def output_off_commands(self) -> list[str]:
        return ["NUDG:STAT OFF", "OUTP OFF"]

    def safe_shutdown(self, max_step: float, step_s: float = 0.0, deadline: float | None = None) -> bool:
        ok = super().safe_shutdown(max_step, step_s, deadline)
        if ok:
            self.dac = np.zeros_like(self.dac)
        return ok

    def shutdown(self) -> None:
        """Ramp every DAC to 0 V, disconnect the nudge and switch the outputs off (writes only)."""
        self.safe_shutdown(max_step=0.1)
        super().shutdown()
