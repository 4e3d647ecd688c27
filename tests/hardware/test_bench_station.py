"""On the bench: run with `python -m pytest tests/hardware --hardware my_station.yaml`.

Skipped without `--hardware`. These send real commands through the station's limits:
identify every instrument, read the network at zero input, program it back to what it
holds, and leave it in the safe state.
"""

from __future__ import annotations

import pytest
import torch

from hil.drivers.lab import LabCrossbar, check_station
from hil.station import load_station

pytestmark = pytest.mark.skipif(
    "not config.getoption('--hardware')", reason="bench test: needs --hardware STATION.yaml"
)


def test_station_answers_and_its_wiring_checks_out(hardware_station):
    lines = check_station(hardware_station)
    assert lines and "station" in lines[0]


def test_zero_input_reads_and_reprogramming_round_trip(hardware_station):
    from hil.interface import Topology

    station = load_station(hardware_station)
    layers = (len(station.input_refs()), *(len(refs) for refs in station.layer_refs()))
    with LabCrossbar.open(Topology(layers), hardware_station) as xbar:
        m = xbar.measure(torch.zeros(1, layers[0]))
        assert all(v.shape == (1, n) for v, n in zip(m.voltages, layers[1:]))
        held = xbar.read_conductances()
        report = xbar.program(held, verify=True)
        assert report.n_failed == 0
