"""`hil instruments check STATION --read`: one safe read of every node at 0 V inputs, before a first training.

After the queries-only check (identify, error queues, limits, dry run of the wiring), this
opens the station as `LabCrossbar` does (configure, outputs on at 0 V), reads every free
node N times with every input at 0 V and no nudge, and brings the station back to its safe
state.  Nothing is programmed: the cells keep what they hold.  What it shows per node: the
mean (with zero bias currents every node of a resistive network sits at 0 V when its inputs
do, so an offset points at a wiring, ground or bias problem) and the standard deviation of
the N reads (the read noise a training will see, before any averaging).
"""

from __future__ import annotations

from pathlib import Path
from statistics import median

import torch

from hil.interface import Topology
from hil.station import Station, load_station


def wiring_topology(station: Station) -> Topology:
    """The network the station is wired for: one node per input and read channel."""
    sizes = [len(station.input_refs())] + [len(layer) for layer in station.layer_refs()]
    g_min, g_max = station.limits.g_min_s, station.limits.g_max_s
    g_unit = station.scales.g_unit_s or 1.0
    return Topology(layers=tuple(sizes), g_min=g_min / g_unit, g_max=g_max / g_unit, g_unit=g_unit,
                    v_unit=station.scales.v_unit_v or 1.0)


def read_check(path: str | Path, n_samples: int = 8, max_offset_v: float = 0.01) -> tuple[list[str], list[str]]:
    """Read every node n_samples times at 0 V inputs; (lines, warnings).  The station ends in its safe state."""
    from hil.drivers.lab import LabCrossbar

    station = load_station(path)
    topology = wiring_topology(station)
    lines = [f"read at 0 V inputs, no nudge, N = {n_samples} per node (nothing programmed):"]
    warnings: list[str] = []
    with LabCrossbar(topology, station, source=str(path)) as xbar:
        m = xbar.measure(torch.zeros(1, topology.n_in, dtype=torch.float64), n_samples=n_samples)
        duration = m.info.get("duration_s", float("nan"))
    v_unit = topology.v_unit
    stds: list[float] = []
    lines.append(f"  {'node':16s} {'channel':10s} {'mean (V)':>12s} {'std (V)':>11s}")
    for l, refs in enumerate(station.layer_refs()):
        label = "output" if l == len(station.layer_refs()) - 1 else f"hidden {l + 1}"
        for j, (inst, ch) in enumerate(refs):
            mean = float(m.voltages[l][0, j]) * v_unit
            std = float(m.std[l][0, j]) * v_unit
            stds.append(std)
            lines.append(f"  {label + ' ' + str(j):16s} {inst + '.' + ch:10s} {mean:12.4e} {std:11.3e}")
            if abs(mean) > max_offset_v:
                warnings.append(f"{label} node {j} ({inst}.{ch}) reads {mean:+.4g} V at 0 V inputs "
                                f"(more than {max_offset_v:g} V): check its wiring, ground and bias current")
    if n_samples > 1:
        lines.append(f"noise: median std {median(stds):.3e} V, max {max(stds):.3e} V over {len(stds)} nodes "
                     f"(N = {n_samples}); EP averages N reads, so a training at N sees std / sqrt(N)")
    lines.append(f"read took {duration:.3g} s; every source back at 0 V and off")
    return lines, warnings
