"""The station-level estimate a planner (`hil train --estimate`) sums per batch: built from the timing models only."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.drivers.estimate import estimate_batch_s, estimate_measure_s, estimate_program_s, estimate_read_s
from hil.drivers.timing import timing_for
from hil.station import load_station

ROOT = Path(__file__).resolve().parents[2]
BOARD = load_station(ROOT / "tests" / "emulator" / "data" / "station.yaml")
MEMRISTIVE = load_station(ROOT / "protocols" / "stations" / "memristive_2600_707b.yaml")


def test_a_read_is_each_readers_model():
    daq = timing_for("daq970a", BOARD.instruments["daq"])
    assert estimate_read_s(BOARD, 100) == {"daq": pytest.approx(daq.estimate_read_s(100, 42))}


def test_a_measure_is_ramp_settle_and_reads_per_sample():
    one = estimate_measure_s(BOARD, 10, 1)
    many = estimate_measure_s(BOARD, 10, 20, nudged=True)
    assert one["total_s"] == pytest.approx(one["ramp_s"] + one["settle_s"] + one["read_s"])
    assert many["read_s"] == pytest.approx(20 * one["read_s"]) and many["nudge_s"] > 0


def test_a_batch_is_its_phases_and_one_program():
    est = estimate_batch_s(BOARD, (1568, 32, 10), 20, 10, phases=3)
    m = estimate_measure_s(BOARD, 10, 20)["total_s"]
    assert est["measure_s"] > 3 * m  # two nudged phases add the nudge switching
    assert est["total_s"] == pytest.approx(est["measure_s"] + est["program_s"])


def test_pulse_programming_is_bounded_by_the_pulse_cap():
    worst = estimate_program_s(MEMRISTIVE, (2, 2, 1))
    two = estimate_program_s(MEMRISTIVE, (2, 2, 1), pulses_per_cell=2)
    assert worst > two > 0
