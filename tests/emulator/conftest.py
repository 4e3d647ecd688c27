"""Fixtures of the emulator tests (helpers in `hilep_emulator_helpers`, a name no other test folder uses)."""

from __future__ import annotations

import pytest
from hilep_emulator_helpers import RUN, SPEED, STATION

from hil.simulators.emulator import Emulator
from hil.station import load_station


@pytest.fixture
def emulator(tmp_path):
    """The e2e station served on loopback, physics from the run config's twin section and seed."""
    from hil.config import load_config

    cfg, _ = load_config(str(RUN))
    # the instruments' clock 1000x faster than theirs: a 42-channel DAQ970A sweep (0.56 s) takes 0.56 ms
    with Emulator(load_station(STATION), cfg.crossbar, seed=cfg.seed, speed=SPEED) as emu:
        emu.station_path = emu.write_station(tmp_path / "emulated.yaml")
        yield emu
