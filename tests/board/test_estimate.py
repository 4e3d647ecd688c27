"""`hil train --estimate`: the planner's parts add up to the instruments' timing models, and the CLI runs nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hilep_board_helpers import CONFIGS, STATIONS
from hilep_testing import hil, runs

from hil.drivers.plan import StationTimer, read_parts
from hil.drivers.timing import timing_for
from hil.estimate import PARTS
from hil.station import load_station

SHIPPED = STATIONS / "board_daq970a_2450.yaml"


@pytest.mark.parametrize("kind", ["daq970a", "daq6510", "keithley2450", "keithley2600", "keithley2400"])
@pytest.mark.parametrize(("n", "k"), [(1, 1), (16, 5), (100, 3)])
def test_read_parts_add_up_to_the_instrument_model(kind, n, k):
    t = timing_for(kind)
    parts = read_parts(t, n, k)
    assert set(parts) <= set(PARTS)
    assert sum(parts.values()) == pytest.approx(t.estimate_read_s(n, k), rel=1e-12)
    # autozero on: (conversions - 1) extra apertures per reading beside the integration's one
    aperture = n * k * t.nplc / t.line_hz
    assert parts["integration"] == pytest.approx(aperture + n * k * t.overhead_s)
    assert parts["autozero"] == pytest.approx((t.autozero_conversions - 1) * aperture if t.autozero else 0.0)


def test_ramps_count_the_steps_the_station_allows():
    timer = StationTimer(load_station(SHIPPED))  # ramp 5 V/s in 10 ms steps: 0.05 V per step
    n_src = len(timer.source_inst)
    levels = np.zeros((2, n_src))
    levels[0, 0] = 1.0  # one input to 1 V (20 steps, 19 waits between them), then back to 0 V (20 more)
    out = timer.ramps(levels, np.zeros(n_src))
    assert out["ramping"] == pytest.approx(2 * 19 * 0.01)
    board = timer.t["board"]
    writes = 40  # one write of the board's levels per step; the 2450 (nudge) never moves
    assert out["commands"] == pytest.approx((writes + 2) * board.command_s)  # + one error check per ramp


def test_estimate_prints_every_part_and_creates_no_run(tmp_path, capsys):
    capsys.readouterr()
    assert hil("train", str(CONFIGS / "xor-8-4-1.yaml"), "--station", str(SHIPPED), "--workspace", str(tmp_path),
               "--estimate") == 0
    out = capsys.readouterr().out
    assert "per batch of 4" in out and "50 batches" in out
    for part in ("integration", "autozero", "switching", "settling", "ramping", "commands", "transfers",
                 "programming"):
        assert part in out
    assert runs(tmp_path) == []


def test_estimate_on_the_twin_is_one_clear_line(tmp_path, capsys):
    assert hil("train", str(CONFIGS / "xor-8-4-1.yaml"), "--workspace", str(tmp_path), "--estimate") == 2
    err = capsys.readouterr().err
    assert "--estimate needs a station" in err and "Traceback" not in err
