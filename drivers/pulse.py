"""Pulse programming of memristive cells through a switch matrix with an SMU.

Each cell (i, j) of block G_l sits between the node of layer l-1 on matrix column
`columns[l-1][i]` and the node of layer l on column `columns[l][j]`.  To reach it the
matrix connects the SMU HI row to the first column and the LO row to the second
(break-before-make), then the SMU reads the cell at `v_read` and applies
incremental step pulses (SET, positive, to raise g; RESET, negative, to lower it)
until |g - target| <= tolerance * target or the pulse cap is reached.  Every pulse
is checked against `pulse_v_abs_max` and the cell power limit before it is sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from hil.drivers.limits import Guard
from hil.errors import LimitError
from hil.station import PulseProgramming

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


@dataclass
class PulseReport:
    """What one block's programming did: pulses used and the cells that did not converge."""

    achieved: np.ndarray
    pulses: int = 0
    failed: list[tuple[int, int]] = field(default_factory=list)


class PulseProgrammer:
    """Incremental step pulses with read-verify, cell by cell, for one SMU channel and one matrix."""

    def __init__(self, spec: PulseProgramming, smu, channel: str, matrix, guard: Guard) -> None:
        self.spec = spec
        self.smu = smu
        self.channel = channel
        self.matrix = matrix
        self.guard = guard

    def __repr__(self) -> str:
        return f"PulseProgrammer({self.spec!r})"

    def crosspoints(self, layer: int, i: int, j: int) -> list[str]:
        """Matrix channels that put cell (i, j) of block G{layer} between SMU HI and LO."""
        s = self.spec
        a = s.columns[layer - 1][i]
        b = s.columns[layer][j]
        return [f"{s.slot}{s.hi_row}{a:02d}", f"{s.slot}{s.lo_row}{b:02d}"]

    def read_cell(self, layer: int, i: int, j: int) -> float:
        """Conductance of one cell (S), read at v_read."""
        s = self.spec
        self.guard.check_pulse(s.v_read, self.guard.limits.g_max_s, f"G{layer}[{i},{j}] read")
        self.matrix.route(self.crosspoints(layer, i, j))
        current = self.smu.read_current(self.channel, s.v_read, self.guard.limits.pulse_v_abs_max)
        return abs(current) / s.v_read

    def program_cell(self, layer: int, i: int, j: int, target_s: float) -> tuple[float, int, bool]:
        """Pulse one cell towards target_s; returns (achieved g, pulses used, converged)."""
        s = self.spec
        where = f"G{layer}[{i},{j}]"
        g = self.read_cell(layer, i, j)
        pulses = 0
        k_set = k_reset = 0
        while abs(g - target_s) > s.tolerance * target_s:
            if pulses >= s.max_pulses:
                return g, pulses, False
            if g < target_s:
                volts = s.v_set_start + k_set * s.v_step
                k_set += 1
            else:
                volts = -(s.v_reset_start + k_reset * s.v_step)
                k_reset += 1
            try:
                # worst case: the cell may reach g_max during the pulse
                self.guard.check_pulse(volts, max(g, target_s), where)
            except LimitError as exc:
                log.warning("%s: stopped before an over-limit pulse: %s", where, exc)
                return g, pulses, False
            self.smu.pulse(self.channel, volts, s.width_s, self.guard.limits.pulse_v_abs_max)
            pulses += 1
            g = self.read_cell(layer, i, j)
        return g, pulses, True

    def program_block(self, layer: int, target_s: np.ndarray) -> PulseReport:
        achieved = np.empty_like(target_s)
        report = PulseReport(achieved=achieved)
        for i in range(target_s.shape[0]):
            for j in range(target_s.shape[1]):
                g, n, ok = self.program_cell(layer, i, j, float(target_s[i, j]))
                achieved[i, j] = g
                report.pulses += n
                if not ok:
                    report.failed.append((i, j))
        if report.failed:
            log.warning("G%d: %d cells did not converge: %s", layer, len(report.failed), report.failed[:10])
        self.matrix.open_all()
        self.smu.raise_errors(f"pulse programming of G{layer}")
        return report

    def read_block(self, layer: int, shape: tuple[int, int]) -> np.ndarray:
        out = np.empty(shape)
        for i in range(shape[0]):
            for j in range(shape[1]):
                out[i, j] = self.read_cell(layer, i, j)
        self.matrix.open_all()
        return out
