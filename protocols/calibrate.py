"""Programming characterization: write a grid of conductances many times, read them back, fit the devices.

What to do lives here; the crossbar (twin or board) does the writes and reads,
and `hil.analysis.noise_stats` fits what comes back.  Steps, all on one block
(`write.block`), every write unverified (`program(..., verify=False)`) so that
what is measured is the device, not the verify loop:

1. range: request `probe_low` and `probe_high` (the topology's bounds where
   they are finite) `repeats` times; each cell's lowest and highest read-back is
   its range; cells that neither moves are stuck (`p_off`, `p_on`) and are left
   out of what follows;
2. write noise: a grid of `levels` targets inside the range, one per cell
   (cells cycle through the grid), written `repeats` times; the std over the
   repeats of a cell, pooled over the cells of a target, is the write noise at g;
3. levels: a ramp of targets across each cell's range, written `repeats` times;
   the offset of the mean read-back from the target is fitted by "rounded to one
   of n levels of the cell's range" for every n;
4. drift: one write, then reads at `hold_s` after it, on the crossbar's clock
   when its timestamps run on across `measure()` calls (the twin, whose clock
   advances only as it reads: the hold is reads of the held inputs), else on
   the wall clock (a board).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hil.analysis import device_fits as df
from hil.analysis import noise_stats as ns
from hil.errors import ConfigError
from hil.interface import Crossbar
from hil.protocols.characterize_noise import CharacterizeConfig, held_state

_HOLD_CHUNK = 1 << 20  # samples per measure() call while holding


@dataclass
class WriteResult:
    block: str
    cells: int
    fits: dict[str, Any]  # write_noise, range, levels, drift: ns results as dicts
    devices: list[dict[str, Any]]  # calibration entries, in the twin's devices format
    arrays: dict[str, list[float]]  # what the figures plot
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"block": self.block, "cells": self.cells, **self.fits, "devices": self.devices, "notes": self.notes}


def _read(xbar: Crossbar, block: str) -> np.ndarray:
    return xbar.read_conductances()[block].detach().double().cpu().numpy().ravel()


def _write(xbar: Crossbar, block: str, shape: tuple[int, int], values: np.ndarray) -> None:
    xbar.program({block: torch.as_tensor(values.reshape(shape), dtype=torch.float32)}, verify=False)


class Clock:
    """Time on the crossbar's clock when its timestamps run on across measure() calls (the twin's
    clock advances only as it reads), else wall time (a board, whose timestamps restart per call)."""

    def __init__(self, xbar: Crossbar, x: torch.Tensor) -> None:
        self.xbar, self.x = xbar, x
        a = xbar.measure(x, n_samples=1).timestamps_s.double().cpu().numpy()
        b = xbar.measure(x, n_samples=1).timestamps_s.double().cpu().numpy()
        self.running = bool(b[0] > a[-1])
        self.dt_s = float(b[0] - a[-1]) if self.running else 0.0

    def now(self) -> float:
        if not self.running:
            return time.monotonic()
        return float(self.xbar.measure(self.x, n_samples=1).timestamps_s[-1]) + self.dt_s

    def hold_until(self, t_end_s: float) -> float:
        """Keep the held inputs on until `t_end_s` (reading them, on a crossbar clock); returns the time."""
        t = self.now()
        while t < t_end_s:
            if not self.running:
                time.sleep(min(t_end_s - t, 1.0))
                t = self.now()
                continue
            n = int(min(_HOLD_CHUNK, max(1, math.ceil((t_end_s - t) / self.dt_s))))
            t = float(self.xbar.measure(self.x, n_samples=n).timestamps_s[-1]) + self.dt_s
        return t


def calibrate_write(
    xbar: Crossbar,
    cfg: CharacterizeConfig,
    *,
    progress: Callable[[str], None] | None = None,
    should_stop: Callable[[], None] | None = None,
) -> WriteResult:
    """Range, write noise vs g, levels and drift of block `write.block`; see the module docstring."""
    spec = cfg.write
    topo = xbar.topology
    if spec.block not in topo.blocks:
        raise ConfigError(f"write.block: {spec.block!r} is not a block of layers {topo.layers} "
                          f"({', '.join(topo.blocks)})")
    shape = topo.blocks[spec.block]
    cells = shape[0] * shape[1]
    say = progress or (lambda msg: None)
    stop = should_stop or (lambda: None)
    x, params = held_state(topo, cfg.read, cfg.seed)
    xbar.program(params, verify=True)
    notes: list[str] = []

    # 1. range -------------------------------------------------------------------------------
    say("range")
    low_req = max(spec.probe_low, topo.g_min)
    high_req = topo.g_max if math.isfinite(topo.g_max) else spec.probe_high
    lows, highs = [], []
    for _ in range(spec.repeats):
        _write(xbar, spec.block, shape, np.full(cells, low_req))
        lows.append(_read(xbar, spec.block))
        _write(xbar, spec.block, shape, np.full(cells, high_req))
        highs.append(_read(xbar, spec.block))
        stop()
    rng = df.fit_range(np.array(lows), np.array(highs), low_req, high_req, math.isfinite(topo.g_max))
    if not rng.upper_found:
        notes.append(f"no upper bound: requests of {high_req:g} were written as asked; set network.g_max "
                     "(twin) or the station's g_max_s to probe a finite range")
    lo_cell, hi_cell = rng.lo_cell, rng.hi_cell

    # 2. write noise on a grid inside the range ----------------------------------------------------
    say("write noise")
    g_lo, g_hi = rng.g_min, rng.g_max if rng.upper_found else max(1.0, 10 * rng.g_min)
    span = g_hi - g_lo
    grid = np.linspace(g_lo + 0.1 * span, g_hi - 0.1 * span, spec.levels)
    perm = np.random.default_rng(cfg.seed).permutation(cells)
    level_of = perm % spec.levels
    target = grid[level_of]
    reps = []
    for _ in range(spec.repeats):
        _write(xbar, spec.block, shape, target)
        reps.append(_read(xbar, spec.block))
        stop()
    reps_a = np.array(reps)
    wn = df.fit_write_noise(target, reps_a, level_of, grid, lo_cell if rng.upper_found else None,
                            hi_cell if rng.upper_found else None, margin_sigmas=spec.margin_sigmas,
                            exclude=rng.stuck)

    # 3. levels from a ramp across each cell's range ----------------------------------------------
    say("levels")
    frac = (np.arange(cells) % spec.ramp_points + 0.5) / spec.ramp_points
    frac = frac[np.random.default_rng(cfg.seed + 1).permutation(cells)]
    ramp_req = g_lo - 0.15 * span + 1.3 * span * frac
    ramp_req = np.clip(ramp_req, max(topo.g_min, 0.0), topo.g_max)
    ramp = []
    for _ in range(spec.repeats):
        _write(xbar, spec.block, shape, ramp_req)
        ramp.append(_read(xbar, spec.block))
        stop()
    ramp_a = np.array(ramp)
    free = ~rng.stuck
    lev = df.fit_levels(ramp_req[free], ramp_a.mean(axis=0)[free], lo_cell[free], hi_cell[free],
                        noise_std=wn.std_at(ramp_req[free]) / math.sqrt(spec.repeats)) if rng.upper_found else None

    # 4. drift over the hold ------------------------------------------------------------------------
    say("drift")
    clock = Clock(xbar, x)
    _write(xbar, spec.block, shape, target)
    t_w = clock.now()
    g_w = _read(xbar, spec.block)
    times, values = [], []
    for h in sorted(spec.hold_s):
        t = clock.hold_until(t_w + h)
        values.append(_read(xbar, spec.block))
        times.append(t - t_w)
        stop()
    drift = df.fit_drift(np.array(times), g_w[free], np.array(values)[:, free])

    devices: list[dict[str, Any]] = []
    if wn.sigma_abs > 0 or wn.sigma_rel > 0:
        devices.append({"kind": "write_noise", "sigma_abs": wn.sigma_abs, "sigma_rel": wn.sigma_rel, "poly": []})
    if rng.upper_found:
        devices.append({"kind": "range", "g_min": rng.g_min, "g_max": rng.g_max, "spread_rel": rng.spread_rel})
    if rng.p_off > 0 or rng.p_on > 0:
        devices.append({"kind": "stuck", "p_off": rng.p_off, "p_on": rng.p_on})
    if lev is not None and lev.n_levels is not None:
        devices.append({"kind": "levels", "n_levels": lev.n_levels})
    if drift.nu is not None:
        devices.append({"kind": "drift", "nu": drift.nu, "nu_spread": drift.nu_spread, "t0_s": drift.t0_s})
    fits = {"write_noise": ns.as_dict(wn), "range": ns.as_dict(rng, skip=("lo_cell", "hi_cell", "stuck")),
            "levels": ns.as_dict(lev) if lev is not None else None, "drift": ns.as_dict(drift)}
    arrays = {
        "grid_g": wn.level_g.tolist(), "grid_std": wn.level_std.tolist(), "grid_std_err": wn.level_std_err.tolist(),
        "ramp_requested": ramp_req.tolist(), "ramp_achieved": ramp_a[0].tolist(),
        "drift_t_s": list(times), "drift_ratio": drift.ratio.tolist(),
    }
    return WriteResult(spec.block, cells, fits, devices, arrays, notes)
