"""The planner of `hil train --estimate` on a station: the steps `LabCrossbar` runs, timed by the instruments' models.

Registered as the `lab` planner (entry point group `hil.planners`).  It walks one epoch as
`LabCrossbar` would run it, with the epoch's own input and target voltages: per example of
every `measure()`, a ramp of every source from its previous level (steps of at most
`ramp_v_per_s * ramp_step_s`, one write per instrument and step, one error-queue check per
instrument), `wiring.settle_s`, and each reading instrument's N-sample read; per nudged phase
the nudge connect and disconnect; per batch one `program()` of every block
(`hil.drivers.estimate.estimate_program_s`).  Every duration
comes from `hil.drivers.timing` (one model per instrument, the numbers of its manual); this
module only counts the steps and sorts each second into a part of `hil.estimate.PARTS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hil.drivers.estimate import estimate_program_s
from hil.drivers.timing import InstrumentTiming, timing_for
from hil.estimate import PARTS, Estimate, TrainingPlan
from hil.station import BoardConductance, FixedConductance, Station, expand_refs


def read_parts(t: InstrumentTiming, n_samples: int, n_channels: int) -> dict[str, float]:
    """One N-sample read of k channels, by part; the parts sum to `t.estimate_read_s(N, k)`."""
    nk = n_samples * n_channels
    fills = t.fills(n_samples, n_channels)
    aperture = t.nplc / t.line_hz
    return {
        "integration": nk * (aperture + t.overhead_s),
        "autozero": nk * (t.conversion_s() - aperture),
        "switching": nk * t.switch_s,
        "settling": nk * t.channel_delay_s + n_samples * t.trigger_delay_s + fills * t.source_delay_s,
        "commands": t.transactions(n_samples, n_channels) * t.command_s,
        "transfers": t.transfer_s(nk, fills),
    }


class StationTimer:
    """Times the steps of one station's `measure()` and `program()` calls, by part."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.t = {name: timing_for(spec.kind, spec) for name, spec in station.instruments.items()}
        self.inputs = station.input_refs()
        self.nudges = station.nudge_refs()
        refs = self.inputs + self.nudges
        self.source_inst = [inst for inst, _ in refs]
        self.instruments = sorted(set(self.source_inst))
        self.columns = {name: np.array([i for i, s in enumerate(self.source_inst) if s == name])
                        for name in self.instruments}
        readers: dict[str, set[str]] = {}
        for layer in station.layer_refs():
            for inst, ch in layer:
                readers.setdefault(inst, set()).add(ch)
        self.readers = {name: len(chs) for name, chs in readers.items()}
        lim = station.limits
        self.max_step = lim.ramp_v_per_s * lim.ramp_step_s

    def read(self, n_samples: int) -> dict[str, float]:
        out = dict.fromkeys(PARTS, 0.0)
        for name, k in self.readers.items():
            for part, s in read_parts(self.t[name], n_samples, k).items():
                out[part] += s
        out["settling"] += self.station.wiring.settle_s
        return out

    def ramps(self, levels: np.ndarray, start: np.ndarray) -> dict[str, float]:
        """Ramps through a sequence of source levels `(M, sources)` from `start`, one per example."""
        prev = np.vstack([start[None, :], levels[:-1]])
        delta = np.abs(levels - prev)
        steps = np.maximum(1, np.ceil(delta.max(axis=1) / self.max_step - 1e-9))
        steps[delta.max(axis=1) == 0] = 0
        out = dict.fromkeys(PARTS, 0.0)
        for name in self.instruments:
            cols = self.columns[name]
            touched = delta[:, cols].max(axis=1) > 0
            t = self.t[name]
            write_bytes = 4 * len(cols) + t.header_bytes
            n_writes = float(np.sum(steps * touched))
            out["commands"] += n_writes * t.command_s + float(np.sum(touched)) * t.command_s  # + error check
            out["transfers"] += n_writes * write_bytes / t.link_bytes_per_s
        out["ramping"] += float(np.sum(np.maximum(steps - 1, 0))) * self.station.limits.ramp_step_s
        return out

    def nudge(self) -> dict[str, float]:
        """One nudged phase: the nudge conductance connected, then disconnected."""
        out = dict.fromkeys(PARTS, 0.0)
        if self.station.nudge is None:
            return out
        cond = self.station.nudge.conductance
        if isinstance(cond, BoardConductance):
            out["commands"] += 4 * self.t[cond.instrument].command_s  # NUDG:G, NUDG:STAT ON, error check, OFF
        elif isinstance(cond, FixedConductance):
            for name in {inst for inst, _ in expand_refs(cond.switch)}:
                t: Any = self.t[name]
                out["switching"] += 2 * t.route_s()
        return out

    def program(self, layers: tuple[int, ...]) -> dict[str, float]:
        """One `program()` of every block (board: bulk writes and read-back; memristive: worst-case pulses)."""
        out = dict.fromkeys(PARTS, 0.0)
        out["programming"] = estimate_program_s(self.station, layers, verify=True)
        return out


def _add(total: dict[str, float], part: dict[str, float], times: float = 1.0) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0.0) + times * v


def plan_training(spec: dict[str, Any], source: str, plan: TrainingPlan) -> Estimate:
    """Seconds per part of an average training batch and of the test pass, for a `kind: lab` crossbar section."""
    from hil.drivers.lab import LabCrossbar

    _, station, path = LabCrossbar.check_spec(spec, source)
    timer = StationTimer(station)
    v_unit = station.scales.v_unit_v or 1.0
    x = np.asarray(plan.train_inputs, dtype=np.float64) * v_unit
    y = np.asarray(plan.train_targets, dtype=np.float64) * v_unit
    n_in, n_src = x.shape[1], len(timer.source_inst)
    level = np.zeros(n_src)
    train = dict.fromkeys(PARTS, 0.0)
    read = timer.read(plan.n_samples)
    for b in range(plan.batches):
        xb = x[b * plan.batch_size : (b + 1) * plan.batch_size]
        yb = y[b * plan.batch_size : (b + 1) * plan.batch_size]
        phases = [np.hstack([xb, np.broadcast_to(level[n_in:], (len(xb), n_src - n_in))])]
        phases += [np.hstack([xb, yb])] * plan.nudged_phases
        seq = np.vstack(phases)
        _add(train, timer.ramps(seq, level))
        level = seq[-1]
        _add(train, read, len(seq))
        _add(train, timer.nudge(), plan.nudged_phases)
        _add(train, timer.program(plan.layers))
    batch = {k: v / max(plan.batches, 1) for k, v in train.items()}
    xt = np.asarray(plan.test_inputs, dtype=np.float64) * v_unit
    test = dict.fromkeys(PARTS, 0.0)
    seq = np.hstack([xt, np.broadcast_to(level[n_in:], (len(xt), n_src - n_in))])
    _add(test, timer.ramps(seq, level))
    _add(test, timer.read(plan.eval_n_samples), len(seq))
    notes = [f"line frequency {t.line_hz:g} Hz for {name}" for name, t in timer.t.items() if name in timer.readers]
    return Estimate(station=str(path), n_samples=plan.n_samples, batch_size=plan.batch_size, batches=plan.batches,
                    batch_parts=batch, eval_parts=test, notes=notes)

