"""A lab run records what the dashboard shows of its station: identities, limits, last source levels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("pyvisa_sim", reason="needs pyvisa-sim (the lab/test extras)")

from hil.drivers.lab import LabCrossbar  # noqa: E402
from hil.interface import SupportsDescribe, Topology  # noqa: E402

SIM = Path(__file__).resolve().parents[1] / "stations" / "sim_station.yaml"


def test_a_board_describes_its_station_without_instrument_traffic():
    with LabCrossbar.from_spec(Topology(layers=(4, 2, 1), g_unit=1e-4), {"kind": "lab", "station": str(SIM)},
                               seed=0, source="run.yaml") as xbar:
        assert isinstance(xbar, SupportsDescribe)
        x = torch.tensor([[0.5, 0.2, -0.5, -0.2]])
        xbar.measure(x, n_samples=1)
        info = json.loads(json.dumps(xbar.describe()))  # what the run stores as its `station` artifact
    assert info["limits"]["v_abs_max"] > 0 and set(info["instruments"]) == set(xbar.station.instruments)
    assert all(i["idn"] for i in info["instruments"].values())  # *IDN? answers, as read when it opened
    levels = [v for inst in info["last_levels_v"].values() for v in inst.values()]
    assert 0.5 in levels and -0.5 in levels  # the inputs it last drove
