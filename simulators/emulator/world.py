"""The physics behind every emulated instrument of a station: one `TwinCrossbar`.

The station says which instrument channel drives or reads each node; `World` turns
the instruments' state into a twin request and back.  Sources (SMU outputs, board
DACs) give the input voltages and the nudge targets; the board's nudge conductance,
or a fixed one whose switch channels are closed, gives beta; the conductance board's
blocks are the twin's conductances and bias currents.  A read of N samples on some
channels asks the twin for N explicit reads (its read-noise chain, its generator) at
the equilibrium of that moment.  Physical units come from the station's `scales`:
volts = twin volts * v_unit_v, siemens = twin conductance * g_unit_s, amperes of a bias
= twin bias * g_unit_s * v_unit_v.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import torch

from hil.interface import Nudge, Topology
from hil.simulators.twin import TwinConfig, TwinCrossbar
from hil.station import (
    BoardConductance,
    BoardProgramming,
    FixedConductance,
    PulseProgramming,
    Station,
    expand_refs,
    parse_ref,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class UnmodelledPulse(Exception):
    """A pulse reached a routed cell, but the twin has no `pulse` device model to say what it does."""


class World:
    """A station's nodes, wired to emulated instruments, solved by one twin."""

    def __init__(self, station: Station, twin: TwinConfig | dict[str, Any] | None = None, seed: int = 0) -> None:
        self.station = station
        cfg = twin if isinstance(twin, TwinConfig) else TwinConfig(**{k: v for k, v in (twin or {}).items()})
        self.inputs = station.input_refs()
        self.layers = station.layer_refs()
        self.nudges = station.nudge_refs()
        self.topology = Topology(layers=(len(self.inputs), *(len(layer) for layer in self.layers)))
        self.twin = TwinCrossbar(self.topology, cfg, seed=seed)
        self.g_unit = station.scales.g_unit_s or 1.0
        self.v_unit = station.scales.v_unit_v or 1.0
        self.lock = threading.RLock()
        self.instruments: dict[str, Any] = {}
        self.node_of: dict[tuple[str, str], tuple[int, int]] = {}
        for l, layer in enumerate(self.layers):
            for j, ref in enumerate(layer):
                self.node_of[ref] = (l, j)
        self.reads = 0
        prog = station.conductances
        self.block_names: dict[str, str] = {}  # board block -> twin parameter
        self.pulse_smu: tuple[str, str] | None = None
        self.pulses = 0
        if isinstance(prog, BoardProgramming):
            for param in self.topology.parameter_shapes():
                self.block_names[prog.blocks.get(param, param)] = param
            self.power_on_conductances()
        else:  # memristive cells hold what the twin's device models start them at
            inst, ch, _ = parse_ref(prog.smu)
            self.pulse_smu = (inst, ch)

    def power_on_conductances(self) -> None:
        """Cells at the bottom of their range, biases at 0 A (what a board holds after power-up)."""
        if not isinstance(self.station.conductances, BoardProgramming):
            return
        g0 = {}
        for name, shape in self.topology.parameter_shapes().items():
            g0[name] = torch.full(shape, self.station.limits.g_min_s / self.g_unit if name.startswith("G") else 0.0)
        with self.lock:
            self.twin.program(g0)

    # --- conductances --------------------------------------------------------------------------
    def block_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = self.topology.parameter_shapes()
        return {blk: shapes[param] for blk, param in self.block_names.items()}

    def set_block(self, block: str, values_phys: np.ndarray) -> None:
        param = self.block_names[block]
        unit = self.g_unit if param.startswith("G") else self.g_unit * self.v_unit
        t = torch.as_tensor(np.asarray(values_phys, dtype=np.float64) / unit, dtype=self.twin.dtype)
        with self.lock:
            self.twin.program({param: t.reshape(self.topology.parameter_shapes()[param])})

    def get_block(self, block: str) -> np.ndarray:
        param = self.block_names[block]
        unit = self.g_unit if param.startswith("G") else self.g_unit * self.v_unit
        with self.lock:
            value = self.twin.read_conductances()[param]
        return value.detach().cpu().double().numpy() * unit

    # --- nodes -----------------------------------------------------------------------------------
    def _level(self, ref: tuple[str, str]) -> float:
        inst = self.instruments.get(ref[0])
        return 0.0 if inst is None else float(inst.source_level(ref[1]))

    def _nudge(self) -> Nudge | None:
        nudge = self.station.nudge
        if nudge is None:
            return None
        cond = nudge.conductance
        if isinstance(cond, BoardConductance):
            board = self.instruments.get(cond.instrument)
            beta_s = board.nudge_beta_s() if board is not None else 0.0
        else:
            assert isinstance(cond, FixedConductance)
            beta_s = cond.beta_s
            for inst, ch in expand_refs(cond.switch):
                matrix = self.instruments.get(inst)
                if matrix is None or ch not in matrix.closed:
                    beta_s = 0.0
        if beta_s <= 0.0:
            return None
        t = np.array([self._level(ref) for ref in self.nudges]) / self.v_unit
        return Nudge(beta_s / self.g_unit, torch.as_tensor(t[None, :], dtype=self.twin.dtype))

    def read(self, instrument: str, channels: list[str], n: int) -> np.ndarray:
        """n reads of each channel at the present equilibrium, `(n, k)` volts; unwired channels read 0 V."""
        with self.lock:
            x = np.array([self._level(ref) for ref in self.inputs]) / self.v_unit
            m = self.twin.measure(
                torch.as_tensor(x[None, :], dtype=self.twin.dtype), nudge=self._nudge(), n_samples=n,
                keep_samples=True,
            )
            self.reads += n
        assert m.samples is not None
        out = np.zeros((n, len(channels)))
        for c, ch in enumerate(channels):
            node = self.node_of.get((instrument, ch))
            if node is not None:
                l, j = node
                out[:, c] = m.samples[l][:, 0, j].detach().cpu().double().numpy() * self.v_unit
        return out

    def current(self, instrument: str, channel: str, volts: float) -> float:
        """Current (A) a source at `volts` on (instrument, channel) drives into what it is wired to.

        The memristive cell the matrix routes to the pulse SMU, or an input node: its
        conductances to the first layer at the present equilibrium; 0 A when unwired.
        """
        if self.pulse_smu == (instrument, channel):
            return self.cell_current(volts)
        ref = (instrument, channel)
        if ref not in self.inputs or not self.layers:
            return 0.0
        i = self.inputs.index(ref)
        with self.lock:
            x = np.array([self._level(r) for r in self.inputs]) / self.v_unit
            m = self.twin.measure(torch.as_tensor(x[None, :], dtype=self.twin.dtype), nudge=self._nudge())
            g1 = self.twin.read_conductances()["G1"][i].detach().cpu().double().numpy()
        h = m.voltages[0][0].detach().cpu().double().numpy()
        return float(np.sum(g1 * (volts / self.v_unit - h))) * self.g_unit * self.v_unit

    def is_wired(self, instrument: str, channel: str) -> bool:
        return (instrument, channel) in self.node_of

    # --- memristive cells: pulses and reads through the switch matrix --------------------------
    def routed_cell(self) -> tuple[str, int, int] | None:
        """The cell (block, i, j) that the matrix puts between the pulse SMU's HI and LO rows, if exactly one."""
        prog = self.station.conductances
        if not isinstance(prog, PulseProgramming):
            return None
        matrix = self.instruments.get(prog.matrix)
        closed = getattr(matrix, "closed", set())
        hi = [int(c[2:]) for c in closed if c[0] == str(prog.slot) and c[1] == prog.hi_row]
        lo = [int(c[2:]) for c in closed if c[0] == str(prog.slot) and c[1] == prog.lo_row]
        if len(hi) != 1 or len(lo) != 1:
            return None
        for l in range(1, len(prog.columns)):
            if hi[0] in prog.columns[l - 1] and lo[0] in prog.columns[l]:
                return f"G{l}", prog.columns[l - 1].index(hi[0]), prog.columns[l].index(lo[0])
        return None

    def cell_current(self, volts: float) -> float:
        """Current (A) through the routed cell at `volts`; 0 when no single cell is routed (open circuit)."""
        cell = self.routed_cell()
        if cell is None:
            return 0.0
        name, i, j = cell
        with self.lock:
            g = float(self.twin.read_conductances()[name][i, j]) * self.g_unit
        return g * volts

    @property
    def pulse_model(self) -> bool:
        """Whether the twin says what a programming pulse does to a cell (a `pulse` device model)."""
        return self.twin.devices is not None and self.twin.devices.pulses is not None

    def pulse(self, volts: float, width_s: float) -> None:
        """One programming pulse of `volts` on the routed cell (the twin's pulse device model).

        UnmodelledPulse when a cell is routed and the twin has no `pulse` model: the cell is left as it is.
        """
        cell = self.routed_cell()
        if cell is None or volts == 0.0:
            return
        name, i, j = cell
        if not self.pulse_model:
            raise UnmodelledPulse(f"no 'pulse' device model in the twin (crossbar.devices): the {volts:g} V pulse "
                                  f"on {name}[{i},{j}] left the cell as it was")
        mask = torch.zeros(self.topology.blocks[name], dtype=torch.bool)
        mask[i, j] = True
        with self.lock:
            self.twin.pulse(name, mask, 1 if volts > 0 else -1, abs(volts))
            self.pulses += 1
