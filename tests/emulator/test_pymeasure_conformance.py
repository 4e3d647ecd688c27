"""pymeasure's own instrument classes against the emulator, over real loopback sockets (pyvisa-py SOCKET).

Nobody here wrote these clients: what they send is what a lab member's script sends.
Each test uses the class's common properties and methods (identification, source and
measure, buffers, errors, shutdown) and checks the answers against the physics behind
the emulator (its `World`), not against our drivers.  Only pymeasure's sleeps between
ramp steps are shortened (the commands are unchanged).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hilep_emulator_helpers import DATA
from hilep_testing import wait_for

from hil.simulators.emulator import Emulator
from hil.station import load_station

keithley = pytest.importorskip("pymeasure.instruments.keithley")

#: fast enough for CI, slow enough that every reading still takes time (1 PLC at 60 Hz: 0.33 ms here)
SPEED = 100.0


@pytest.fixture
def emu():
    with Emulator(load_station(DATA / "all_kinds.yaml"), {"sigma": 0.0}, speed=SPEED) as e:
        yield e


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    import pymeasure.instruments.keithley.keithley2400 as k2400
    import pymeasure.instruments.keithley.keithley2450 as k2450
    import pymeasure.instruments.keithley.keithley2600 as k2600

    for module in (k2400, k2450, k2600):
        monkeypatch.setattr(module.time, "sleep", lambda s: None)  # ramp pauses only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pymeasure's deprecations of its own helpers
        yield


def connect(cls, emu, name):
    return cls(emu.addresses[name], read_termination="\n", write_termination="\n", timeout=5000)


def test_keithley2400_class(emu):
    smu = connect(keithley.Keithley2400, emu, "k2400")
    model = emu.model("k2400")
    assert smu.id.startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400")
    smu.apply_voltage(voltage_range=2, compliance_current=1e-3)
    smu.measure_current(nplc=1)
    smu.source_voltage = 0.5
    smu.enable_source()
    assert smu.source_enabled is True and smu.source_mode == "voltage"
    assert smu.source_voltage == pytest.approx(0.5)
    assert smu.compliance_current == pytest.approx(1e-3)
    expected_i = emu.world.current("k2400", "", 0.5)
    assert expected_i != 0.0
    assert smu.current == pytest.approx(expected_i, rel=1e-5)  # the load's current, not the 0.5 V level
    assert smu.voltage == pytest.approx(0.5)
    assert smu.line_frequency == 60
    assert smu.auto_zero_enabled is True
    smu.config_buffer(20)
    smu.start_buffer()
    smu.wait_for_buffer(timeout=10, interval=0.005)
    data = smu.buffer_data.reshape(20, 5)  # VOLT, CURR, RES, TIME, STAT as pymeasure's __init__ asks
    assert np.allclose(data[:, 0], 0.5) and np.allclose(data[:, 1], expected_i, rtol=1e-5)
    assert np.all(np.diff(data[:, 3]) > 0)  # timestamps advance on the emulator's clock
    assert smu.means[:2] == pytest.approx([0.5, expected_i], rel=1e-5)
    smu.trigger_count = 10
    assert smu.trigger_count == 10 and smu.arm_count == 1
    assert smu.check_errors() == []
    smu.write(":SOUR:VOLT 5")  # beyond the fixed 2 V range: refused
    assert smu.next_error[0] == -222 and smu.source_voltage == pytest.approx(0.5)
    smu.shutdown()
    assert wait_for(lambda: not model.output and model.level_v == 0.0)
    smu.adapter.close()


def test_keithley2450_class(emu):
    smu = connect(keithley.Keithley2450, emu, "k2450")
    model = emu.model("k2450")
    assert smu.id.startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
    smu.reset()
    smu.apply_voltage(compliance_current=1e-3)
    smu.measure_current(nplc=0.5)
    smu.source_voltage = 0.2
    smu.enable_source()
    assert smu.source_enabled is True and smu.source_mode == "voltage"
    assert smu.compliance_current == pytest.approx(1e-3) and smu.current_nplc == pytest.approx(0.5)
    expected_i = emu.world.current("k2450", "", 0.2)  # the k2450 is a hidden node: it sinks what flows in
    assert smu.current == pytest.approx(expected_i, rel=1e-5, abs=1e-15)
    smu.apply_current(compliance_voltage=1.0)
    smu.source_current = 0.0
    smu.measure_voltage(nplc=0.1)
    assert smu.voltage == pytest.approx(emu.world.read("k2450", [""], 1)[0, 0], abs=1e-9)
    smu.buffer_points = 50
    assert smu.buffer_points == 50
    for _ in range(3):
        smu.voltage  # noqa: B018 - each READ? stores a reading in defbuffer1
    assert int(smu.ask(":TRAC:ACT?")) == 3
    assert smu.means == pytest.approx(emu.world.read("k2450", [""], 1)[0, 0], abs=1e-9)
    assert smu.check_errors() == []
    smu.write(':TRAC:DATA? 1,9,"nobuffer"')
    assert smu.next_error[0] == -224
    smu.shutdown()
    assert wait_for(lambda: not model.output)
    smu.adapter.close()


def test_keithley2600_class(emu, caplog):
    smu = connect(keithley.Keithley2600, emu, "k2600")
    model = emu.model("k2600")
    assert "Model 2636B" in smu.id
    ch = smu.ChA
    ch.apply_voltage(voltage_range=2, compliance_current=1e-3)
    ch.measure_current(nplc=1)  # sends smua.measure.i() with the output off: 5061, which check_errors logs
    assert "5061,Operation not permitted while OUTPUT is off" in caplog.text.replace(", ", ",")
    ch.source_voltage = 0.3
    ch.source_output = "ON"
    assert ch.source_output == "ON" and ch.source_mode == "voltage"
    assert ch.source_voltage == pytest.approx(0.3) and ch.compliance_current == pytest.approx(1e-3)
    expected_i = emu.world.current("k2600", "a", 0.3)
    assert expected_i != 0.0
    assert ch.current == pytest.approx(expected_i, rel=1e-4)  # print() keeps 6 digits
    assert ch.voltage == pytest.approx(0.3)
    assert ch.ask("measure.nplc") == pytest.approx(1.0)  # (pymeasure maps measure_nplc through its range)
    assert smu.next_error == (0, "Queue Is Empty")
    smu.write("smua.source.levelv=30")  # beyond the fixed 2 V range: refused
    assert smu.next_error[0] == 5005 and ch.source_voltage == pytest.approx(0.3)
    ch.shutdown()
    assert wait_for(lambda: not model.outputs_on()["a"] and model.levels()["a"] == 0.0)
    smu.adapter.close()


def test_keithley_daq6510_class(emu):
    dmm = connect(keithley.KeithleyDAQ6510, emu, "dmm")
    assert dmm.id.startswith("KEITHLEY INSTRUMENTS,MODEL DAQ6510")
    dmm.measure_voltage(nplc=0.5, voltage=10, auto_range=False)
    assert dmm.ask(":SENS:FUNC?").strip() == "VOLT:DC"
    assert dmm.voltage_nplc == pytest.approx(0.5) and dmm.voltage_range == pytest.approx(10)
    assert dmm.voltage == pytest.approx(0.0)  # the front input is wired to nothing
    dmm.close_channel(101)
    assert dmm.ask(":ROUT:CLOS?").strip() == "(@101)"
    assert dmm.check_errors() == []
    dmm.write(":SENS:VOLT:NPLC 50")
    assert dmm.next_error[0] == -222
    dmm.shutdown()
    dmm.adapter.close()
