"""Station checks: the wiring fits the topology, every channel exists, limits within ratings, `hil instruments check`.

Only queries reach an instrument from here: `check_station` opens every session,
asks `*IDN?` and the error queue, checks the limits against each model's ratings and
dry-runs the wiring; it never configures or switches anything on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hil.drivers.base import reason
from hil.drivers.ratings import board_range_problem, check_ratings, model_ratings
from hil.drivers.sessions import IDN_HINTS, _close_adapter, driver_classes, make_driver, open_session
from hil.errors import ConfigError
from hil.interface import Topology
from hil.station import BoardProgramming, PulseProgramming, Station, expand_refs, load_station

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


def check_fit(st: Station, topo: Topology, src: str) -> None:
    """The station's wiring matches the topology (one channel per node) and its limits are within the
    instruments' ratings; a ConfigError names the key."""
    problems = st.problems()
    if problems:
        raise ConfigError(f"{src}: {problems[0]}")
    check_ratings(st, src)
    n_in = len(expand_refs(st.wiring.inputs))
    if n_in != topo.n_in:
        raise ConfigError(f"{src}: wiring.inputs: {n_in} channels for {topo.n_in} input nodes")
    if len(st.wiring.layers) != topo.depth:
        raise ConfigError(f"{src}: wiring.layers: {len(st.wiring.layers)} layers for {topo.depth} free layers")
    for l, refs in enumerate(st.wiring.layers):
        n = len(expand_refs(refs))
        if n != topo.layers[l + 1]:
            raise ConfigError(f"{src}: wiring.layers.{l}: {n} channels for {topo.layers[l + 1]} nodes")
    if st.nudge is not None and len(st.nudge_refs()) != topo.n_out:
        raise ConfigError(f"{src}: nudge.sources: {len(st.nudge_refs())} channels for {topo.n_out} outputs")
    prog = st.conductances
    if isinstance(prog, PulseProgramming):
        if len(prog.columns) != len(topo.layers):
            raise ConfigError(f"{src}: conductances.columns: {len(prog.columns)} layers, expected "
                              f"{len(topo.layers)}")
        for l, cols in enumerate(prog.columns):
            if len(cols) != topo.layers[l]:
                raise ConfigError(f"{src}: conductances.columns.{l}: {len(cols)} columns for "
                                  f"{topo.layers[l]} nodes")



def check_board_range(station: Station, instruments: dict[str, Any], source: str) -> None:
    """The station's g_max_s within the conductance range the board reports (`G:RANG?`); one query."""
    prog = station.conductances
    if not isinstance(prog, BoardProgramming) or prog.instrument not in instruments:
        return
    try:
        lo, hi = (float(v) for v in instruments[prog.instrument].conductance_range)
    except Exception as exc:
        raise ConfigError(f"{source}: instruments.{prog.instrument}: no answer to G:RANG? ({reason(exc)})") from None
    problem = board_range_problem(station, prog.instrument, (lo, hi))
    if problem:
        raise ConfigError(f"{source}: {problem}")


def _channel_problem(kind: str, ch: str, inst: Any) -> str | None:
    """Why `ch` is not a channel of this instrument, or None."""
    if kind in ("keithley2400", "keithley2450"):
        return None if ch == "" else f"{kind} has a single channel (write just the instrument name)"
    if kind == "keithley2600":
        return None if ch in ("a", "b") else "2600 channels are a and b"
    if kind in ("daq970a", "agilent34970a", "daq6510"):
        from hil.drivers.keithley_daq6510 import CHANNELS as DAQ6510_CHANNELS
        from hil.drivers.keysight_daq970a import CHANNELS as DAQ970_CHANNELS

        allowed = DAQ6510_CHANNELS if kind == "daq6510" else DAQ970_CHANNELS
        return None if ch.isdigit() and int(ch) in allowed else f"no channel {ch!r} on a {kind}"
    if kind == "conductance_board":
        n = int(inst.dac_count) if inst is not None else None
        if not ch.isdigit() or (n is not None and int(ch) >= n):
            return f"no DAC channel {ch!r} (the board has {n})"
        return None
    return f"a {kind} has no source or read channels"


def dry_run(station: Station, instruments: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """The wiring, node by node, checked against the instruments (queries only); (lines, problems)."""
    lines: list[str] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    groups = [("inputs", station.input_refs())]
    groups += [(f"layer {l + 1}", refs) for l, refs in enumerate(station.layer_refs())]
    if station.nudge is not None:
        groups.append(("nudge", station.nudge_refs()))
    for label, refs in groups:
        for i, (inst, ch) in enumerate(refs):
            node = f"{label} node {i}"
            if (inst, ch) in seen:
                problems.append(f"{node}: {inst}.{ch} is already wired to {seen[inst, ch]}")
            seen[inst, ch] = node
            kind = station.instruments[inst].kind
            why = _channel_problem(kind, ch, (instruments or {}).get(inst) if kind == "conductance_board" else None)
            if why:
                problems.append(f"{node}: {inst}.{ch}: {why}")
        lines.append(f"  {label:9s} {len(refs):4d} nodes: " + ", ".join(
            f"{i}.{c}" if c else i for i, c in refs[:6]) + (" ..." if len(refs) > 6 else ""))
    sizes = [len(station.input_refs())] + [len(r) for r in station.layer_refs()]
    prog = station.conductances
    if isinstance(prog, BoardProgramming):
        board = (instruments or {}).get(prog.instrument)
        catalog = board.catalog() if board is not None else None
        for l in range(1, len(sizes)):
            name = f"G{l}"
            blk = prog.blocks.get(name, name)
            shape = (sizes[l - 1], sizes[l])
            if catalog is not None and catalog.get(blk) != shape:
                problems.append(f"conductances: board block {blk!r} is {catalog.get(blk)}, the wiring needs {shape}")
            lines.append(f"  {name}: board block {blk} {shape}")
    else:
        for l in range(1, len(sizes)):
            lines.append(f"  G{l}: pulse-programmed through {prog.matrix} with {prog.smu} "
                         f"(rows {prog.hi_row}/{prog.lo_row}, slot {prog.slot})")
    return lines, problems


def check_station(path: str | Path) -> list[str]:
    """`hil instruments check`: open, *IDN?, error queues, limits and a dry run; only queries are sent."""
    from hil.errors import UserError

    station = load_station(path)
    source = str(path)
    check_ratings(station, source)  # the widest model of each kind, before anything opens
    lines = [f"station {station.name!r} ({path})"]
    classes = driver_classes()
    opened: dict[str, Any] = {}
    idns: dict[str, str] = {}
    try:
        for name, spec in station.instruments.items():
            opened[name] = make_driver(name, spec, open_session(name, spec, source), classes)
        for name, inst in opened.items():
            spec = station.instruments[name]
            try:
                idn = inst.identify()
                errors = inst.check_errors()
            except Exception as exc:
                raise ConfigError(f"{source}: instruments.{name}.address: no answer from {spec.address!r} "
                                  f"({reason(exc)})") from None
            if IDN_HINTS[spec.kind].upper() not in idn.upper():
                raise ConfigError(f"{source}: instruments.{name}.kind: {spec.kind}, but {spec.address!r} "
                                  f"answers {idn!r}")
            errs = "; ".join(f"{c} {m}" for c, m in errors) or "none"
            lines.append(f"  {name:10s} {spec.kind:18s} {spec.address}  {idn}  errors: {errs}")
            idns[name] = idn
        check_ratings(station, source, model_ratings(station, idns, source))  # the models *IDN? names
        check_board_range(station, opened, source)
        lim = station.limits
        lines.append(f"limits: |V| <= {lim.v_abs_max:g} V"
                     + "".join(f", {k} <= {v:g} V" for k, v in lim.v_abs_max_per_source.items())
                     + f"; compliance {lim.compliance_a:g} A; cell power <= {lim.cell_power_max_w:g} W; "
                     f"ramp {lim.ramp_v_per_s:g} V/s; g in [{lim.g_min_s:g}, {lim.g_max_s:g}] S"
                     + (f"; pulses <= {lim.pulse_v_abs_max:g} V" if lim.pulse_v_abs_max else ""))
        lines.append("wiring (dry run, nothing sent):")
        wiring, problems = dry_run(station, opened)
        lines += wiring
    finally:
        for inst in opened.values():
            _close_adapter(inst)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{source}: wiring: {problems[0]}{more}")
    lines.append("ok")
    return lines

