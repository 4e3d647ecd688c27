"""The one place that applies a station's limits; every request passes here before anything is sent.

An over-limit request raises `LimitError` naming the node, the value and the limit,
and nothing reaches an instrument: callers check a whole request (a batch of
inputs, a block of conductances) before they send its first command.
"""

from __future__ import annotations

import logging

import numpy as np

from hil.errors import LimitError
from hil.station import Limits

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class Guard:
    """Checks levels, ramps, nudges and cell power against a station's `Limits`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def __repr__(self) -> str:
        return f"Guard({self.limits!r})"

    @property
    def max_step_v(self) -> float:
        """Largest change of any source between two ramp steps (V)."""
        return self.limits.ramp_v_per_s * self.limits.ramp_step_s

    def check_levels(self, names: list[str], instruments: list[str], volts: np.ndarray, what: str) -> None:
        """Every `volts[..., i]` within the |V| limit of `instruments[i]`; raises on the first that is not."""
        volts = np.asarray(volts, dtype=np.float64)
        if not np.all(np.isfinite(volts)):
            raise LimitError(f"{what}: non-finite voltage requested")
        vmax = np.array([self.limits.v_max(inst) for inst in instruments])
        over = np.abs(volts) > vmax
        if np.any(over):
            idx = np.argwhere(over)[0]
            i = int(idx[-1])
            raise LimitError(
                f"{what}: {float(volts[tuple(idx)]):g} V on {names[i]} exceeds the limit ±{vmax[i]:g} V; nothing sent"
            )

    def check_level(self, name: str, instrument: str, volts: float) -> None:
        self.check_levels([name], [instrument], np.array([volts]), "source")

    def check_pulse(self, volts: float, g_s: float, where: str) -> None:
        vmax = self.limits.pulse_v_abs_max or self.limits.v_abs_max
        if not abs(volts) <= vmax:
            raise LimitError(f"{where}: pulse of {volts:g} V exceeds pulse_v_abs_max ±{vmax:g} V; nothing sent")
        power = g_s * volts * volts
        if power > self.limits.cell_power_max_w:
            raise LimitError(
                f"{where}: pulse of {volts:g} V on {g_s:.3g} S dissipates {power:.3g} W, over the limit "
                f"{self.limits.cell_power_max_w:g} W; nothing sent"
            )

    def check_beta(self, beta_s: float, fixed_s: float | None) -> None:
        if not beta_s > 0:
            raise LimitError(
                f"nudge: beta = {beta_s:g} S; a board ties outputs to their targets through a passive "
                "conductance, so beta must be > 0 (use centered: false on a board)"
            )
        if fixed_s is not None:
            if abs(beta_s - fixed_s) > 1e-6 * fixed_s:
                raise LimitError(f"nudge: beta = {beta_s:g} S, but this station's nudge conductance is fixed at "
                                 f"{fixed_s:g} S")
            return
        lo, hi = self.limits.g_min_s, self.limits.g_max_s
        if not lo <= beta_s <= hi:
            raise LimitError(f"nudge: beta = {beta_s:g} S is outside the conductance range [{lo:g}, {hi:g}] S")

    def check_power(self, blocks_s: dict[str, np.ndarray], x_v: np.ndarray, v_bound: float) -> None:
        """Worst-case power of every cell at these inputs, against `cell_power_max_w`.

        Node voltages of a passive network lie within the range of its sources, so a cell
        of block G1 between input i and a node sees at most |x_i| + v_bound, and any other
        cell at most 2 v_bound.
        """
        pmax = self.limits.cell_power_max_w
        x_abs = np.max(np.abs(np.asarray(x_v, dtype=np.float64)), axis=0) if np.size(x_v) else None
        for name, g in blocks_s.items():
            if not name.startswith("G") or g.ndim != 2:
                continue
            if name == "G1" and x_abs is not None:
                span = (x_abs + v_bound)[:, None]
            else:
                span = np.full((g.shape[0], 1), 2 * v_bound)
            power = g * span * span
            worst = float(np.max(power)) if power.size else 0.0
            if worst > pmax:
                i, j = np.unravel_index(int(np.argmax(power)), power.shape)
                raise LimitError(
                    f"power: cell {name}[{i},{j}] ({g[i, j]:.3g} S) could dissipate {worst:.3g} W at these "
                    f"inputs, over cell_power_max_w = {pmax:g} W; nothing sent"
                )

    def clip_conductances(self, g_s: np.ndarray) -> tuple[np.ndarray, int]:
        """Clip to the device range [g_min_s, g_max_s]; returns the clipped array and how many cells moved."""
        lo, hi = self.limits.g_min_s, self.limits.g_max_s
        if not np.all(np.isfinite(g_s)):
            raise LimitError("program: non-finite conductance requested")
        outside = (g_s < lo) | (g_s > hi)
        return np.clip(g_s, lo, hi), int(outside.sum())
