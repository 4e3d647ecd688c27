"""The emulator's clock: readings take the time the timing model gives, and client timeouts meet it for real.

Timestamps the instruments return are emulated time, computed from the model, so they
are compared exactly; the timeout test uses wall time with a factor of ten on each
side (a timeout of a tenth of the read fails, ten times the read passes).
"""

from __future__ import annotations

import pytest
from hilep_emulator_helpers import DATA

from hil.simulators.emulator import Emulator
from hil.simulators.emulator.timing import CHANNEL_DELAY_S, SOURCE_DELAY_S, SWITCH_S, Clock, reading_s
from hil.station import load_station


def ask(model, command: str) -> str:
    reply = model.handle(command.encode())
    return reply.decode("latin-1").strip() if reply else ""


@pytest.fixture
def emu():
    with Emulator(load_station(DATA / "all_kinds.yaml"), {"sigma": 0.0}, speed=1000.0) as e:
        yield e


def test_a_too_short_client_timeout_fails_and_a_sufficient_one_passes():
    """34970A, 3 channels at 10 PLC with autozero: 3 x (14.7 ms + 2 ms + 333 ms + 0.2 ms) = 1.05 s per sweep,
    4 sweeps 4.2 s of instrument time; at speed 10 that is 0.42 s of wall time."""
    import pyvisa

    station = load_station(DATA / "all_kinds.yaml")
    with Emulator(station, {"sigma": 0.0}, speed=10.0) as emu:
        per = SWITCH_S["agilent34970a"] + CHANNEL_DELAY_S + reading_s("agilent34970a", 10, 60.0, True)
        read_s = 4 * 3 * per / 10.0
        assert read_s == pytest.approx(0.42, rel=0.01)
        rm = pyvisa.ResourceManager("@py")
        try:
            res = rm.open_resource(emu.addresses["daq"], read_termination="\n", write_termination="\n")
            res.write("CONF:VOLT:DC AUTO,(@101:103);:VOLT:DC:NPLC 10,(@101:103);:TRIG:COUN 4")
            res.timeout = int(read_s * 1000 / 10)
            with pytest.raises(pyvisa.errors.VisaIOError, match="Timeout"):
                res.query("READ?")
            res.close()  # the late reply goes with the session
            res = rm.open_resource(emu.addresses["daq"], read_termination="\n", write_termination="\n")
            res.timeout = int(read_s * 1000 * 10)
            res.query("*OPC?")  # waits for the sweeps the timed-out READ? started
            assert len(res.query("READ?").split(",")) == 12
            res.close()
        finally:
            rm.close()


def test_scan_timestamps_follow_the_model(emu):
    daq = emu.model("daq")  # a 34970A
    daq.handle(b"CONF:VOLT:DC AUTO,(@101:102);:VOLT:DC:NPLC 2,(@101);:ZERO:AUTO OFF,(@102);"
               b":FORM:READ:TIME ON;:TRIG:COUN 2")
    times = [float(t) for t in ask(daq, "READ?").split(",")[1::2]]
    t101 = SWITCH_S["agilent34970a"] + CHANNEL_DELAY_S + reading_s("agilent34970a", 2, 60.0, True)
    t102 = SWITCH_S["agilent34970a"] + CHANNEL_DELAY_S + reading_s("agilent34970a", 1, 60.0, False)
    expected = [t101, t101 + t102, 2 * t101 + t102, 2 * (t101 + t102)]
    assert times == pytest.approx(expected, abs=1e-3)  # the field has 1 ms resolution


def test_autozero_doubles_the_integration_and_nplc_follows_the_line_frequency():
    for line_hz in (50.0, 60.0):
        with Emulator(load_station(DATA / "all_kinds.yaml"), {"sigma": 0.0}, speed=1000.0, line_hz=line_hz) as e:
            smu = e.model("k2400")
            assert ask(smu, ":SYST:LFR?") == f"{line_hz:g}"
            assert ask(e.model("k2600"), "print(localnode.linefreq)") == f"{line_hz:.5e}"
            smu.handle(b":SOUR:FUNC VOLT;:SENS:FUNC:CONC OFF;:SENS:FUNC 'VOLT';:SENS:VOLT:NPLC 1;"
                       b":FORM:ELEM TIME;:TRIG:COUN 2;:OUTP ON")
            gaps = {}
            for az in ("ON", "OFF"):
                t1, t2 = (float(v) for v in ask(smu, f":SYST:AZER {az};:READ?").split(","))
                gaps[az] = t2 - t1
            # the TIME element has 7 digits of the seconds since power-on: 0.1 ms here
            assert gaps["OFF"] == pytest.approx(SOURCE_DELAY_S + reading_s("keithley2400", 1, line_hz, False),
                                                abs=2e-4)
            assert gaps["ON"] - gaps["OFF"] == pytest.approx(1 / line_hz, abs=4e-4)  # one more line cycle: the zero


def test_2600_buffer_timestamps_are_count_readings_apart(emu):
    smu = emu.model("k2600")
    smu.handle(b"format.asciiprecision=14 smua.source.output=1 smua.measure.nplc=0.5 "
               b"smua.measure.autozero=smua.AUTOZERO_OFF smua.measure.count=3 smua.measure.v(smua.nvbuffer1)")
    t = [float(v) for v in ask(smu, "printbuffer(1,3,smua.nvbuffer1.timestamps)").split(", ")]
    assert [t[1] - t[0], t[2] - t[1]] == pytest.approx([reading_s("keithley2600", 0.5, 60.0, False)] * 2,
                                                       rel=1e-6)


def test_clock_refuses_a_speed_that_is_not_a_finite_positive_number():
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="speed"):
            Clock(bad)


def test_timing_bench_reads_every_instrument_no_faster_than_the_model():
    """The bench's rows (the figures of the report come from it with N = 1, 100, 5000); a sleep never ends
    early, so an emulated read lasts at least its modelled time (the margin is the emulator's own work)."""
    from hil.simulators.emulator.timing_bench import measure

    rows = measure(3, target_s=0.02)
    assert [r["instrument"] for r in rows] == ["keithley2400", "keithley2450", "keithley2600", "daq970a", "daq6510"]
    for r in rows:
        assert r["emulated_s"] >= 0.95 * r["modelled_s"] > 0, r
