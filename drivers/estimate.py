"""What a station's `measure()` and `program()` will take, from the instruments' timing models alone (no I/O).

This is what `hil train --estimate` sums per batch: a planner calls

    est = estimate_batch_s(station, layers=(1568, 32, 10), batch_size=20, n_samples=100, phases=2)
    est["total_s"]          # one batch: every phase's measure() plus one program()

and gets a breakdown (seconds) of the same steps `LabCrossbar` runs: per sample of a
batch, a ramp of every source to its new level (at most `ramp_v_per_s`, one write per
instrument and step, then one error-queue check each), `wiring.settle_s`, then each
reading instrument's N-sample read in turn; per phase, the nudge connect and
disconnect; per batch, writing and verifying every conductance block.  Each
instrument's model is `timing_for(kind, spec)`: the station's `nplc`, `line_hz`
(50 Hz when not given, the longer PLC), `transfer` and `baud_rate`.
"""

from __future__ import annotations

import math
from typing import Any

from hil.drivers.timing import InstrumentTiming, timing_for
from hil.station import BoardConductance, BoardProgramming, FixedConductance, Station, expand_refs, parse_ref


def station_timings(station: Station) -> dict[str, InstrumentTiming]:
    """Every instrument's timing model, as the station file sets it up."""
    return {name: timing_for(spec.kind, spec) for name, spec in station.instruments.items()}


def _groups(refs: list[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, set[str]] = {}
    for inst, ch in refs:
        out.setdefault(inst, set()).add(ch)
    return {k: len(v) for k, v in out.items()}


def estimate_read_s(station: Station, n_samples: int) -> dict[str, float]:
    """One N-sample read of every free node: per reading instrument (they read one after the other)."""
    timings = station_timings(station)
    readers = _groups([ref for layer in station.layer_refs() for ref in layer])
    return {name: timings[name].estimate_read_s(n_samples, k) for name, k in readers.items()}


def estimate_ramp_s(station: Station, delta_v: float | None = None) -> float:
    """Moving every source by up to delta_v (default: v_abs_max) at the ramp rate, one write per instrument and step."""
    lim = station.limits
    delta = lim.v_abs_max if delta_v is None else abs(delta_v)
    steps = max(1, math.ceil(delta / (lim.ramp_v_per_s * lim.ramp_step_s) - 1e-9))
    timings = station_timings(station)
    sources = _groups(station.input_refs() + station.nudge_refs())
    per_step = sum(timings[name].estimate_write_s(4 * k + 16) for name, k in sources.items())
    checks = sum(timings[name].estimate_write_s() for name in sources)  # one error-queue query each
    return steps * per_step + (steps - 1) * lim.ramp_step_s + checks


def estimate_measure_s(station: Station, n_samples: int, batch_size: int, *, nudged: bool = False,
                       delta_v: float | None = None) -> dict[str, float]:
    """One `measure()` of a batch: per sample a ramp, the settle time and the reads; the nudge switched once."""
    reads = estimate_read_s(station, n_samples)
    ramp = estimate_ramp_s(station, delta_v)
    settle = station.wiring.settle_s
    nudge = 0.0
    if nudged and station.nudge is not None:
        cond = station.nudge.conductance
        timings = station_timings(station)
        if isinstance(cond, BoardConductance):
            nudge = 4 * timings[cond.instrument].estimate_write_s()  # NUDG:G, NUDG:STAT ON, error check, OFF
        elif isinstance(cond, FixedConductance) and cond.switch:
            for name in _groups(expand_refs(cond.switch)):
                nudge += 2 * timings[name].route_s()  # type: ignore[attr-defined]
    per_sample = ramp + settle + sum(reads.values())
    return {"ramp_s": batch_size * ramp, "settle_s": batch_size * settle, "read_s": batch_size * sum(reads.values()),
            "nudge_s": nudge, "total_s": batch_size * per_sample + nudge,
            **{f"read_{name}_s": batch_size * t for name, t in reads.items()}}


def estimate_program_s(station: Station, layers: tuple[int, ...], *, verify: bool = True,
                       pulses_per_cell: int | None = None) -> float:
    """Writing every block of a network with these layer sizes (board: bulk block writes; memristive: pulses).

    Pulse programming is bounded with `pulses_per_cell` (default: the station's `max_pulses`, the worst case).
    """
    timings = station_timings(station)
    prog = station.conductances
    sizes = [layers[i] * layers[i + 1] for i in range(len(layers) - 1)]
    if isinstance(prog, BoardProgramming):
        board: Any = timings[prog.instrument]
        blocks = sizes + list(layers[1:])  # conductances, then one bias block per free layer
        return sum(board.program_s(n, verify) for n in blocks)
    smu = timings[parse_ref(prog.smu)[0]]
    matrix: Any = timings[prog.matrix]
    pulses = prog.max_pulses if pulses_per_cell is None else pulses_per_cell
    per_pulse = prog.width_s + 2 * smu.command_s  # the pulse, then a read-verify query
    per_cell = matrix.route_s() + pulses * per_pulse + smu.command_s
    return sum(sizes) * per_cell


def estimate_batch_s(station: Station, layers: tuple[int, ...], batch_size: int, n_samples: int, *,
                     phases: int = 2, verify: bool = True, delta_v: float | None = None) -> dict[str, float]:
    """One training batch: `phases` measure() calls (the first free, the others nudged) and one program()."""
    free = estimate_measure_s(station, n_samples, batch_size, delta_v=delta_v)
    nudged = estimate_measure_s(station, n_samples, batch_size, nudged=True, delta_v=delta_v)
    measure = free["total_s"] + (phases - 1) * nudged["total_s"]
    program = estimate_program_s(station, layers, verify=verify)
    return {"measure_s": measure, "program_s": program, "total_s": measure + program,
            "read_s": free["read_s"] * phases, "ramp_s": free["ramp_s"] * phases,
            "settle_s": free["settle_s"] * phases}
