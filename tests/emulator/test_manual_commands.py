"""Each command the issue lists, typed as the manuals write it, with the answer the manual gives.

The instruments are those of `all_kinds.yaml` on one emulator; `drive` puts the network
in a state where every node carries a voltage (cells at 1e-4 S, sources at 0.8-1 V), so
that readings, currents and overloads come from the twin's physics.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
from hilep_emulator_helpers import DATA

from hil.simulators.emulator import Emulator
from hil.station import load_station

SPEED = 1000.0


@pytest.fixture
def emu():
    with Emulator(load_station(DATA / "all_kinds.yaml"), {"sigma": 0.0}, speed=SPEED) as e:
        yield e


def ask(model, command: str) -> str:
    reply = model.handle(command.encode())
    return reply.decode("latin-1").strip() if reply else ""


def connect(emu, name: str) -> tuple[socket.socket, object]:
    """A client socket on the instrument's loopback port and the file its reply lines are read from."""
    s = socket.create_connection(("127.0.0.1", emu.servers[name].port), timeout=30)
    return s, s.makefile("rb")


def error(model) -> int:
    """The code of the oldest error in the queue (SCPI or TSP), 0 when empty."""
    code, _ = model.next_error()
    return code


def drive(emu) -> None:
    """Inputs +1, +1, -1, -0.8 V; G1 ties the first hidden node to the positive inputs, the second to the
    negative ones (so that both diodes conduct: about +0.90 V and -0.80 V), G2 the output mostly to the first."""
    board = emu.model("board")
    board.handle(b"G:SET:ASC G1,1e-4,1e-6,1e-4,1e-6,1e-6,1e-4,1e-6,1e-4")
    board.handle(b"G:SET:ASC G2,1e-4,1e-5")
    board.handle(b"SOUR:VOLT:ASC -0.8,0")
    board.handle(b"OUTP ON")
    emu.model("k2600").handle(b"smua.source.levelv=1 smub.source.levelv=-1 smua.source.output=1 "
                              b"smub.source.output=1")
    emu.model("k2400").handle(b":SOUR:FUNC VOLT;:SOUR:VOLT 1;:OUTP ON")


# --- Keithley 2400 ---------------------------------------------------------------------------------
def test_2400_read_senses_current_not_the_source_level(emu):
    drive(emu)
    smu = emu.model("k2400")
    smu.handle(b':SENS:FUNC "CURR";:FORM:ELEM CURR')
    expected = emu.world.current("k2400", "", 1.0)
    assert abs(expected) > 1e-6
    assert float(ask(smu, ":READ?")) == pytest.approx(expected, rel=1e-6)
    assert ask(smu, ":FORM:ELEM?") == "CURR"


def test_2400_meas_fetc_init_trigger_counts_and_elements(emu):
    drive(emu)
    smu = emu.model("k2400")
    assert float(ask(smu, ":FORM:ELEM VOLT;:MEAS:VOLT?")) == pytest.approx(1.0)
    smu.handle(b":TRIG:COUN 3;:ARM:COUN 2;:FORM:ELEM VOLT,CURR")
    values = ask(smu, ":READ?").split(",")
    assert len(values) == 12 and ask(smu, ":TRIG:COUN?") == "+3" and ask(smu, ":ARM:COUN?") == "+2"
    smu.handle(b":INIT")
    assert len(ask(smu, ":FETC?").split(",")) == 12
    smu.handle(b":TRIG:COUN 2500")  # 2500 x 2 arms > 2500
    assert error(smu) == -221 and ask(smu, ":TRIG:COUN?") == "+3"


def test_2400_errors_fetch_stale_output_off_and_undefined_header(emu):
    smu = emu.model("k2400")
    smu.handle(b":FETC?")
    assert error(smu) == -230
    smu.handle(b":OUTP OFF;:INIT")
    assert error(smu) == 803
    smu.handle(b":BOGUS:CMD 1")
    assert error(smu) == -113
    assert ask(smu, ":SYST:ERR?") == '0,"No error"'


def test_2400_trace_points_up_to_2500_statistics_and_buffer_full_status(emu):
    drive(emu)
    smu = emu.model("k2400")
    smu.handle(b":TRAC:POIN 2500")
    assert ask(smu, ":TRAC:POIN?") == "2500"
    smu.handle(b":TRAC:POIN 2501")
    assert error(smu) == -222 and ask(smu, ":TRAC:POIN?") == "2500"
    smu.handle(b":STAT:PRES;*CLS;*SRE 1;:STAT:MEAS:ENAB 512;:TRAC:CLE;:TRAC:POIN 5;:TRIG:COUN 5;"
               b":TRAC:FEED SENS;:TRAC:FEED:CONT NEXT;:FORM:ELEM VOLT;:INIT;*WAI")
    assert int(ask(smu, "*STB?")) & 65 == 65  # MSB (buffer full, enabled) and MSS
    assert ask(smu, ":TRAC:POIN:ACT?") == "5" and len(ask(smu, ":TRAC:DATA?").split(",")) == 5
    assert [float(v) for v in ask(smu, ":CALC3:FORM MEAN;:CALC3:DATA?").split(",")][0] == pytest.approx(1.0)


def test_2400_bus_trigger_abort_autozero_line_frequency(emu):
    drive(emu)
    smu = emu.model("k2400")
    smu.handle(b"*TRG")
    assert error(smu) == -211  # nothing armed
    smu.handle(b":ARM:SOUR BUS;:FORM:ELEM VOLT;:INIT;*TRG")
    assert float(ask(smu, ":FETC?")) == pytest.approx(1.0)
    smu.handle(b":ARM:SOUR IMM;:TRAC:CLE;:TRAC:POIN 2500;:TRIG:COUN 2500;:TRAC:FEED:CONT NEXT;:INIT;:ABOR")
    assert int(ask(smu, ":TRAC:POIN:ACT?")) < 2500  # stopped early: what was measured stays
    assert ask(smu, ":SYST:AZER OFF;:SYST:AZER?") == "0" and ask(smu, ":SYST:LFR?") == "60"


def test_2400_overload_beyond_a_fixed_measurement_range(emu):
    drive(emu)
    smu = emu.model("k2400")
    current = abs(emu.world.current("k2400", "", 1.0))
    fixed = next(r for r in (1e-6, 1e-5, 1e-4, 1e-3) if r * 1.05 < current) if current > 1.05e-6 else None
    assert fixed is not None, current
    smu.handle(f':SENS:FUNC "CURR";:SENS:CURR:RANG {fixed:g};:FORM:ELEM CURR'.encode())
    assert ask(smu, ":READ?") == "+9.900000E+37"


# --- Keithley 2450 ---------------------------------------------------------------------------------
def test_2450_read_meas_fetch_and_sense_function(emu):
    drive(emu)
    smu = emu.model("k2450")  # wired to a hidden node: as a voltmeter it reads the node
    smu.handle(b':SOUR:FUNC CURR;:SOUR:CURR 0;:SENS:FUNC "VOLT";:OUTP ON')
    node = emu.world.read("k2450", [""], 1)[0, 0]
    assert abs(node) > 1e-3
    assert ask(smu, ":SENS:FUNC?") == "VOLT:DC"
    assert float(ask(smu, ":READ?")) == pytest.approx(node, rel=1e-6)
    assert float(ask(smu, ":MEAS:VOLT?")) == pytest.approx(node, rel=1e-6)
    assert float(ask(smu, ":FETC?")) == pytest.approx(node, rel=1e-6)
    assert float(ask(smu, ':MEAS:CURR? "defbuffer1",SOUR')) == 0.0  # the source value element
    assert ask(smu, ":SYST:LFR?") == "60"


def test_2450_buffers_make_points_actual_data_and_errors(emu):
    drive(emu)
    smu = emu.model("k2450")
    smu.handle(b':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:OUTP ON;:TRAC:MAKE "mine",100')
    assert ask(smu, ':TRAC:POIN? "mine"') == "100"
    smu.handle(b':SENS:COUN 5;:TRAC:TRIG "mine"')
    assert ask(smu, ':TRAC:ACT? "mine"') == "5" and ask(smu, ':TRAC:ACT:END? "mine"') == "5"
    assert len(ask(smu, ':TRAC:DATA? 1,5,"mine",READ,SOUR,REL').split(",")) == 15
    assert ask(smu, ':TRAC:DATA? 1,1,"mine",UNIT') == "Volt DC"
    for bad, code in ((b':TRAC:DATA? 1,6,"mine"', -222), (b':TRAC:ACT? "nobuf"', -224),
                      (b':TRAC:MAKE "mine",100', -224), (b":TRAC:POIN 5", -222), (b":SENS:COUN 0", -222),
                      (b':TRAC:DEL "defbuffer1"', -224), (b":NOPE?", -113)):
        smu.handle(bad)
        assert error(smu) == code, bad
    smu.handle(b':TRAC:DEL "mine"')
    smu.handle(b':TRAC:ACT? "mine"')
    assert error(smu) == -224


def test_2450_trigger_model_runs_in_the_background_and_abort_keeps_readings(emu):
    drive(emu)
    smu = emu.model("k2450")
    smu.handle(b':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SENS:VOLT:NPLC 10;:OUTP ON;:TRAC:CLE')
    smu.handle(b':TRIG:LOAD "SimpleLoop",1000;:INIT')  # 1000 x 0.33 s: 333 s of instrument time, 0.3 s here
    assert int(ask(smu, ":TRAC:ACT?")) < 1000
    smu.handle(b":ABOR")
    kept = int(ask(smu, ":TRAC:ACT?"))
    assert kept < 1000
    smu.handle(b':SENS:VOLT:NPLC 0.01;:TRIG:LOAD "SimpleLoop",20;:INIT;*WAI')
    assert int(ask(smu, ":TRAC:ACT?")) == kept + 20
    assert ask(smu, ":SENS:VOLT:AZER OFF;:SENS:VOLT:AZER?") == "0"


# --- Keithley 2600B (TSP) ----------------------------------------------------------------------------
def test_2600_print_arithmetic_localnode_and_precision(emu):
    smu = emu.model("k2600")
    assert ask(smu, 'print(1, "a", 2.5)') == "1.00000e+00\ta\t2.50000e+00"
    assert ask(smu, "print(2 + 3 * 4, (2 + 3) * 4, 2 ^ 10, -3 - 1, 7 % 3, 1 / 4)") == \
        "1.40000e+01\t2.00000e+01\t1.02400e+03\t-4.00000e+00\t1.00000e+00\t2.50000e-01"
    assert ask(smu, 'x = 2 y = x * 3 print(x .. "/" .. y, x < y and "yes" or "no")') == "2/6\tyes"
    assert ask(smu, "print(localnode.model, localnode.linefreq)") == "2636B\t6.00000e+01"
    assert ask(smu, "format.asciiprecision = 4 print(0.25)") == "2.500e-01"


def test_2600_reset_measure_iv_nvbuffers_and_sense_current(emu):
    drive(emu)
    smu = emu.model("k2600")
    expected_i = emu.world.current("k2600", "a", 1.0)
    assert abs(expected_i) > 0
    assert float(ask(smu, "print(smua.measure.i())")) == pytest.approx(expected_i, rel=1e-5)
    smu.handle(b"smua.measure.count = 3 smua.nvbuffer1.clear() smua.nvbuffer2.clear() "
               b"smua.nvbuffer1.collectsourcevalues = 1 smua.measure.iv(smua.nvbuffer1, smua.nvbuffer2)")
    n, i1, v1 = ask(smu, "print(smua.nvbuffer1.n, smua.nvbuffer1[1], smua.nvbuffer2.readings[3])").split("\t")
    assert float(n) == 3 and float(i1) == pytest.approx(expected_i, rel=1e-5) and float(v1) == pytest.approx(1.0)
    t1, t3 = (float(v) for v in ask(smu, "print(smua.nvbuffer1.timestamps[1], smua.nvbuffer1.timestamps[3])")
              .split("\t"))
    assert t3 > t1
    assert ask(smu, "print(smua.nvbuffer1.sourcevalues[2], smua.nvbuffer1.capacity)") == "1.00000e+00\t1.00000e+05"
    assert ask(smu, "printbuffer(1, 2, smua.nvbuffer2)") == "1.00000e+00, 1.00000e+00"
    assert ask(smu, "i, v = smua.measure.iv() print(v)") == "1.00000e+00"
    smu.handle(b"smua.reset()")
    assert smu.outputs_on() == {"a": False, "b": True} and smu.levels() == {"a": 0.0, "b": -1.0}
    assert ask(smu, "print(smua.nvbuffer1.n)") == "0.00000e+00"


def test_2600_errorqueue_and_out_of_range_values(emu):
    smu = emu.model("k2600")
    assert ask(smu, "print(errorqueue.next())") == "0.00000e+00\tQueue Is Empty\t0.00000e+00\t0.00000e+00"
    smu.handle(b"smua.source.levelv = 250")  # the 2636B's top range is 200 V
    smu.handle(b"smua.measure.count = 0")
    smu.handle(b"nosuch.thing = 1")
    smu.handle(b"print(")
    assert ask(smu, "print(errorqueue.count)") == "4.00000e+00"
    codes = [ask(smu, 'code, msg = errorqueue.next() print(string.format("%d", code))') for _ in range(4)]
    assert codes == ["1101", "1102", "-286", "-285"]  # beyond the largest range; count below 1
    assert ask(smu, "print(smua.source.levelv)") == "0.00000e+00"


def test_2600_errorqueue_next_gives_the_manuals_severity_and_node_over_the_socket(emu):
    """`errorCode, message, severity, errorNode = errorqueue.next()` (2600B reference manual): a script
    error is RECOVERABLE (20), an overload that switched the output off (5062) SERIOUS (30), both from
    node 1, the stand-alone instrument's; the empty queue is 0, "Queue Is Empty", NO_SEVERITY (0)."""
    s, lines = connect(emu, "k2600")
    with s:
        s.sendall(b"nosuch.thing = 1\nprint(errorqueue.count)\n")  # a runtime error ends its line
        assert lines.readline() == b"1.00000e+00\n"
        emu.model("k2600").trip()
        nxt = b"code, msg, severity, node = errorqueue.next() print(code, severity, node)\n"
        s.sendall(nxt)
        assert lines.readline() == b"-2.86000e+02\t2.00000e+01\t1.00000e+00\n"
        s.sendall(nxt)
        assert lines.readline() == b"5.06200e+03\t3.00000e+01\t1.00000e+00\n"
        s.sendall(b"code, msg, severity = errorqueue.next() print(code, msg, severity)\n")
        assert lines.readline() == b"0.00000e+00\tQueue Is Empty\t0.00000e+00\n"


def test_2600_parameter_errors_are_the_error_lists_codes_over_the_socket(emu):
    """2600B reference manual: a source level beyond a fixed range is taken while the output is off and
    refused when it goes on ("Range considerations": no error until the output is turned on), 5005 "Value
    too big for range"; beyond the largest range 1101 "Parameter too big"; a limit of 0 (smuX.source.limitY)
    or a count of 0 1102 "Parameter too small"; a bad format.data 1406, a bad asciiprecision 1405."""
    s, lines = connect(emu, "k2600")
    with s:
        s.sendall(b"smua.source.rangev = 2 smua.source.levelv = 5 print(errorqueue.count, smua.source.levelv)\n")
        assert lines.readline() == b"0.00000e+00\t5.00000e+00\n"
        for line in (b"smua.source.output = 1", b"smua.source.levelv = 250", b"smua.source.limiti = 0",
                     b"smua.measure.count = 0", b"format.data = 7", b"format.asciiprecision = 30"):
            s.sendall(line + b"\n")
        s.sendall(b"print(errorqueue.count, smua.source.output)\n")
        assert lines.readline() == b"6.00000e+00\t0.00000e+00\n"  # the output stayed off
        codes = []
        for _ in range(6):
            s.sendall(b'code, msg = errorqueue.next() print(string.format("%d,%s", code, msg))\n')
            codes.append(lines.readline().decode().strip())
        assert [c.split(",")[0] for c in codes] == ["5005", "1101", "1102", "1102", "1406", "1405"]
        assert codes[0].startswith("5005,Value too big for range") and codes[2].startswith("1102,Parameter too small")


@pytest.mark.parametrize("name", ["k2600", "mtx"])
def test_tsp_each_print_ends_its_own_line_over_the_socket(emu, name):
    """Each `print()` of a command line is a line of its own in the output queue (TSP `print`), and
    printbuffer's too: three prints, three lines, and nothing left over for the next query."""
    s, lines = connect(emu, name)
    with s:
        s.sendall(b'print(1) print("two", 3) x = 4 print(x)\n')
        assert [lines.readline() for _ in range(3)] == [b"1.00000e+00\n", b"two\t3.00000e+00\n", b"4.00000e+00\n"]
        s.sendall(b"print(errorqueue.count)\n")
        assert lines.readline() == b"0.00000e+00\n"
        if name == "k2600":
            s.sendall(b"smua.source.output = 1 smua.measure.count = 2 smua.nvbuffer1.clear() "
                      b"smua.measure.v(smua.nvbuffer1) printbuffer(1, 2, smua.nvbuffer1) print(smua.nvbuffer1.n)\n")
            assert [lines.readline() for _ in range(2)] == [b"0.00000e+00, 0.00000e+00\n", b"2.00000e+00\n"]


# --- Keithley 707B -----------------------------------------------------------------------------------
def test_707b_channel_ranges_blocks_and_errors(emu):
    mtx = emu.model("mtx")
    mtx.handle(b'channel.close("1A01:1A03")')
    assert ask(mtx, 'print(channel.getclose("allslots"))') == "1A01;1A02;1A03"
    mtx.handle(b'channel.open("1A02")')
    assert ask(mtx, 'print(channel.getclose("slot1"))') == "1A01;1A03"
    mtx.handle(b'channel.exclusiveclose("1B01:1C02")')
    assert ask(mtx, 'print(channel.getclose("allslots"))') == "1B01;1B02;1C01;1C02"
    mtx.handle(b'channel.close("1Z99")')
    assert error(mtx) == 1115
    mtx.handle(b'channel.reset("allslots")')
    assert ask(mtx, 'print(channel.getclose("allslots"))') == "nil"
    assert ask(mtx, "print(localnode.model)") == "707B"


# --- Keysight DAQ970A / 34970A --------------------------------------------------------------------------
def test_daq970a_scans_in_ascending_channel_order_with_channel_tags(emu):
    drive(emu)
    daq = emu.model("daq")
    daq.handle(b"CONF:VOLT:DC AUTO,(@101:105);:ROUT:SCAN (@105,101,103);:FORM:READ:CHAN ON;:FORM:READ:TIME ON")
    assert ask(daq, "ROUT:SCAN?") == "#214(@101,103,105)" and ask(daq, "ROUT:SCAN:SIZE?") == "3"
    fields = ask(daq, "READ?").split(",")
    assert [int(c) for c in fields[2::3]] == [101, 103, 105]
    times = [float(t) for t in fields[1::3]]
    assert times == sorted(times) and times[0] > 0
    assert float(fields[0]) == pytest.approx(emu.world.read("daq", ["101"], 1)[0, 0], rel=1e-6)


def test_daq970a_overload_zero_auto_lfr_and_meas(emu):
    drive(emu)
    daq = emu.model("daq")
    node = emu.world.read("daq", ["101"], 1)[0, 0]
    assert abs(node) > 0.12, node  # beyond 120 % of the 0.1 V range
    daq.handle(b"CONF:VOLT:DC 0.1,(@101)")
    assert ask(daq, "READ?") == ("+9.90000000E+37" if node > 0 else "-9.90000000E+37")
    assert float(ask(daq, "MEAS:VOLT:DC? AUTO,(@101)")) == pytest.approx(node, rel=1e-6)
    daq.handle(b"ZERO:AUTO OFF,(@101)")
    assert ask(daq, "ZERO:AUTO? (@101)") == "0" and ask(daq, "VOLT:DC:NPLC? (@101)") == "+1.00000000E+00"
    assert ask(daq, "SYST:LFR?") == "60"
    daq.handle(b"TRIG:COUN 0")
    assert error(daq) == -222


def test_daq970a_init_fetch_bus_trigger_remove_r_and_abort(emu):
    drive(emu)
    daq = emu.model("daq")
    daq.handle(b"CONF:VOLT:DC AUTO,(@101:102);:TRIG:COUN 4;:INIT")
    assert len(ask(daq, "FETC?").split(",")) == 8 and ask(daq, "DATA:POIN?") == "8"
    assert len(ask(daq, "DATA:REM? 3").split(",")) == 3 and ask(daq, "DATA:POIN?") == "5"
    block = ask(daq, "R? 2")
    assert block.startswith("#") and len(block[2 + int(block[1]):].split(",")) == 2
    daq.handle(b"DATA:REM? 99")
    assert error(daq) == -222
    daq.handle(b"TRIG:SOUR BUS;:TRIG:COUN 2;:INIT;*TRG")
    daq.handle(b"*OPC?")
    assert ask(daq, "DATA:POIN?") == "2"
    daq.handle(b"*TRG;*TRG")
    assert error(daq) == -211  # the third trigger finds nothing armed
    daq.handle(b"TRIG:SOUR IMM;:TRIG:COUN 1000;:INIT;:ABOR")
    assert int(ask(daq, "DATA:POIN?")) < 2000


# --- Keithley DAQ6510 ------------------------------------------------------------------------------------
def test_daq6510_scan_order_buffer_elements_and_sizing(emu):
    drive(emu)
    dmm = emu.model("dmm")
    dmm.handle(b':SENS:FUNC "VOLT:DC",(@101:103);:ROUT:SCAN:CRE (@103,101);:ROUT:SCAN:COUN:SCAN 2;:INIT;*WAI')
    assert ask(dmm, ":ROUT:SCAN?") == "(@103,101)" and ask(dmm, ":ROUT:SCAN:COUN:STEP?") == "2"
    data = ask(dmm, ':TRAC:DATA? 1,4,"defbuffer1",READ,CHAN').split(",")
    assert data[1::2] == ["103", "101", "103", "101"]  # the DAQ6510 scans in the order written
    assert float(data[2]) == pytest.approx(emu.world.read("dmm", ["101"], 1)[0, 0], rel=1e-6)
    dmm.handle(b':TRAC:POIN 10,"defbuffer1";:ROUT:SCAN:COUN:SCAN 8;:INIT;*WAI')  # 16 readings into 10
    assert ask(dmm, ":TRAC:ACT?") == "10"
    dmm.handle(b':TRAC:DATA? 1,11,"defbuffer1"')
    assert error(dmm) == -222
    dmm.handle(b':TRAC:MAKE "scanbuf",100;:ROUT:SCAN:BUFF "scanbuf";:ROUT:SCAN:COUN:SCAN 1000;:INIT')
    assert int(ask(dmm, ':TRAC:ACT? "scanbuf"')) <= 100  # 2000 readings into 100 places, as they come
    dmm.handle(b":ABOR")
    kept = ask(dmm, ':TRAC:ACT? "scanbuf"')
    assert int(kept) <= 100 and ask(dmm, ':TRAC:ACT? "scanbuf"') == kept  # stopped
    dmm.handle(b':TRAC:ACT? "nobuf"')
    assert error(dmm) == -224
    assert ask(dmm, ":SYST:LFR?") == "60"


def test_daq6510_overload_and_nplc_range(emu):
    drive(emu)
    dmm = emu.model("dmm")
    node = emu.world.read("dmm", ["101"], 1)[0, 0]
    assert abs(node) > 0.12, node
    dmm.handle(b':SENS:FUNC "VOLT:DC",(@101);:SENS:VOLT:RANG 0.1,(@101);:ROUT:SCAN:CRE (@101);'
               b':ROUT:SCAN:COUN:SCAN 1;:TRAC:CLE;:INIT;*WAI')
    assert abs(float(ask(dmm, ':TRAC:DATA? 1,1,"defbuffer1",READ'))) == pytest.approx(9.9e37)
    dmm.handle(b":SENS:VOLT:NPLC 20,(@101)")
    assert error(dmm) == -222
    np.testing.assert_equal(float(ask(dmm, ":SENS:VOLT:NPLC? (@101)")), 1.0)
