"""The timing model: NPLC at the line frequency, autozero, switching, transfer; timeouts computed from it."""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from hil.drivers.keysight_daq970a import DAQ970A, DAQ970ATiming
from hil.drivers.timing import TIMEOUT_MARGIN, InstrumentTiming, timeout_s, timing_classes, timing_for
from hil.station import InstrumentSpec

READERS = ["keithley2400", "keithley2450", "keithley2600", "daq970a", "agilent34970a", "daq6510"]


def test_integration_follows_the_line_frequency_and_autozero():
    t = InstrumentTiming(nplc=1.0, line_hz=50.0, autozero=False)
    assert t.conversion_s() == pytest.approx(0.020)
    assert t.with_(line_hz=60.0).conversion_s() == pytest.approx(1 / 60)
    assert t.with_(autozero=True).conversion_s() == pytest.approx(0.040)  # a DMM's zero after every reading


def test_an_n_sample_scan_is_the_sum_of_its_parts():
    t = DAQ970ATiming(nplc=1.0, line_hz=60.0)
    n, k = 100, 3
    per_reading = t.switch_s + t.channel_delay_s + 2 / 60 + t.overhead_s
    expected = 2 * t.command_s + n * k * per_reading + (n * k * 20 + t.header_bytes) / t.link_bytes_per_s
    assert t.estimate_read_s(n, k) == pytest.approx(expected)


@pytest.mark.parametrize("kind", READERS)
def test_every_reader_has_a_model_that_grows_linearly_with_n(kind):
    t = timing_for(kind)
    one, hundred, many = (t.estimate_read_s(n, 2) for n in (1, 100, 5000))
    assert 0 < one < hundred < many
    slope = (many - hundred) / 4900
    assert slope == pytest.approx(2 * t.reading_s() + t.trigger_delay_s + 2 * t.bytes_per_reading
                                  / t.link_bytes_per_s, rel=0.05)


def test_station_settings_reach_the_model():
    spec = InstrumentSpec(kind="keithley2450", address="USB0::1::INSTR", nplc=0.1, line_hz=60, transfer="ascii")
    t = timing_for("keithley2450", spec)
    assert (t.nplc, t.line_hz, t.bytes_per_reading) == (0.1, 60.0, 15.0)
    serial = timing_for("conductance_board", InstrumentSpec(kind="conductance_board", address="ASRL1::INSTR",
                                                            baud_rate=9600))
    assert serial.link_bytes_per_s == pytest.approx(960.0)
    assert set(timing_classes()) == {*READERS, "keithley707b", "conductance_board"}


def test_the_timeout_is_the_base_plus_the_model_with_its_margin():
    assert TIMEOUT_MARGIN == 0.5
    assert timeout_s(10.0, 2.0) == pytest.approx(17.0)


def test_a_read_sets_its_timeout_from_the_model(n_samples):
    """The READ? of N sweeps waits base + 1.5 x the modelled scan, not a fixed guess."""
    n = n_samples
    data = np.zeros((n, 2))
    reply = ",".join(f"{v:+.9E},{c}" for row in data for v, c in zip(row, (101, 102)))
    pairs = [("CONF:VOLT:DC 1,(@101,102);:VOLT:DC:NPLC 1,(@101,102);:ZERO:AUTO ON,(@101,102);:TRIG:SOUR IMM", None),
             ("ROUT:SCAN (@101,102)", None), ("SYST:ERR?", '+0,"No error"'), (f"TRIG:COUN {n}", None),
             ("READ?", reply)]
    with expected_protocol(DAQ970A, pairs) as daq:
        daq.base_timeout_s = 2.0
        daq.configure_reads(["101", "102"], 1.0, 1.0)
        daq.read_voltages(["101", "102"], n)
    modelled = daq.timing.estimate_read_s(n, 2)
    assert daq.last_timeout_s == pytest.approx(2.0 + 1.5 * modelled)
    assert modelled > n * 2 * 2 * 0.020  # at least N*k integrations with autozero (50 Hz until asked)


def test_switches_and_boards_take_no_readings():
    for kind in ("keithley707b", "conductance_board"):
        with pytest.raises(ValueError, match="no readings"):
            timing_for(kind).estimate_read_s(1, 1)
    assert timing_for("conductance_board").program_s(1568 * 32) > 2 * 4 * 1568 * 32 / 1e6
