"""Fixtures of the emulator tests (helpers in `hilep_emulator_helpers`, a name no other test folder uses)."""

from __future__ import annotations

import pytest
from hilep_emulator_helpers import RUN, STATION

from hil.simulators.emulator import Emulator
from hil.station import load_station


@pytest.fixture
def emulator(tmp_path):
    """The e2e station served on loopback, physics from the run config's twin section and seed."""
    from hil.config import load_config

    cfg, _ = load_config(str(RUN))
    with Emulator(load_station(STATION), cfg.crossbar, seed=cfg.seed) as emu:
        emu.station_path = emu.write_station(tmp_path / "emulated.yaml")
        yield emu
