"""Each emulated instrument against its manual's behaviour (state, error queue, status), and every
driver of `hil.drivers` against the emulated instruments through one station of all kinds."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from hilep_emulator_helpers import DATA, SPEED
from hilep_testing import wait_for

from hil.drivers.lab import LabCrossbar
from hil.interface import Nudge, Topology
from hil.simulators.emulator import Emulator
from hil.simulators.twin import TwinCrossbar
from hil.station import load_station

ALL = DATA / "all_kinds.yaml"
TOPO = Topology(layers=(4, 2, 1), g_unit=1e-4)


@pytest.fixture
def emu():
    with Emulator(load_station(ALL), {"sigma": 0.0}, speed=SPEED) as e:
        yield e


def ask(model, command: str) -> str:
    reply = model.handle(command.encode())
    return reply.decode("latin-1").strip() if reply else ""


def test_every_driver_over_the_emulator_matches_the_twin(emu):
    g = {"G1": torch.tensor([[2.0, 0.5], [1.0, 1.5], [0.3, 2.0], [1.2, 0.7]]), "G2": torch.tensor([[1.5], [0.8]]),
         "b1": torch.tensor([0.01, -0.02]), "b2": torch.tensor([0.005])}
    x = torch.tensor([[0.5, 0.2, -0.4, -0.1], [0.1, 0.3, -0.2, 0.0]])
    t = torch.tensor([[0.2], [-0.1]])
    twin = TwinCrossbar(Topology(layers=(4, 2, 1)))
    twin.program({k: v * (1e-4 if k.startswith("G") else 1e-4) for k, v in g.items()})
    with LabCrossbar(TOPO, emu.station, source="all_kinds") as xbar:
        assert {n: m.errors for n, m in emu.models.items() if m.errors} == {}
        report = xbar.program(g)
        assert report.n_failed == 0 and report.n_clipped == 0
        for nudge, beta in ((None, None), (Nudge(1.0, t), 1e-4)):
            lab = xbar.measure(x, nudge=nudge, n_samples=3)
            ref = twin.measure(x, nudge=None if nudge is None else Nudge(beta, t))
            for a, b in zip(lab.voltages, ref.voltages):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert emu.model("mtx").closed == set()  # the nudge switch opened again after the nudged phase
        # the sources are on at their last levels while the crossbar is open
        assert emu.model("k2600").outputs_on() == {"a": True, "b": True}
        assert emu.model("k2400").levels()[""] == pytest.approx(0.1)
    assert all((safe := emu.wait_safe()).values()), safe
    assert {n: list(m.errors) for n, m in emu.models.items() if m.errors} == {}


def test_scpi_error_queue_status_and_power_on_bit(emu):
    daq = emu.model("daq")
    assert ask(daq, "*ESR?") == "128"  # PON after power-on, cleared by reading it
    assert ask(daq, "*ESR?") == "0"
    daq.handle(b"FOO:BAR 1")
    daq.handle(b"TRIG:COUN 0")
    assert ask(daq, "SYST:ERR?").startswith("-113,")
    assert ask(daq, "SYST:ERR?").startswith("-222,")
    assert ask(daq, "SYST:ERR?") == '+0,"No error"'
    assert int(ask(daq, "*ESR?")) & (32 | 16) == 48  # CME and EXE
    for _ in range(60):
        daq.handle(b"NOPE")
    assert len(daq.errors) == daq.queue_size and daq.errors[-1][0] == -350


def test_daq_scan_state_and_readings(emu):
    daq = emu.model("daq")
    assert ask(daq, "READ?") == "" and ask(daq, "SYST:ERR?").startswith("-221,")  # no scan list
    daq.handle(b"CONF:VOLT:DC 1,(@101:103);:TRIG:COUN 4")
    assert ask(daq, "ROUT:SCAN:SIZE?") == "3"
    values = ask(daq, "READ?").split(",")
    assert len(values) == 12 and all(v.startswith(("+", "-")) and "E" in v for v in values)
    daq.handle(b"FORM:READ:CHAN ON;:TRIG:COUN 1")
    assert ask(daq, "READ?").split(",")[1::2] == ["101", "102", "103"]


def test_smus_keep_source_state_and_refuse_out_of_range(emu):
    k2400, k2450 = emu.model("k2400"), emu.model("k2450")
    k2400.handle(b":SOUR:FUNC VOLT;:SOUR:VOLT:RANG 2;:SOUR:VOLT 1.5;:OUTP ON")
    assert k2400.output and k2400.level_v == 1.5 and ask(k2400, ":SOUR:VOLT?") == "+1.500000E+00"
    k2400.handle(b":SOUR:VOLT 5")  # beyond the 2 V range: refused, level kept
    assert k2400.level_v == 1.5 and ask(k2400, "SYST:ERR?").startswith("-222,")
    k2450.handle(b":OUTP OFF;:COUN 3;:TRAC:TRIG \"defbuffer1\"")  # no readings with the output off
    assert ask(k2450, ":SYST:ERR?").startswith("-221,")
    k2450.trip()
    assert not k2450.output and ask(k2450, "SYST:ERR?").startswith("5074,")


def test_tsp_instruments(emu):
    smu, mtx = emu.model("k2600"), emu.model("mtx")
    q = 'code,msg=errorqueue.next() print(string.format("%d,%s",code,msg))'
    assert ask(smu, q) == "0,Queue Is Empty"
    smu.handle(b"smua.source.func=smua.OUTPUT_DCVOLTS smua.source.rangev=1 smua.source.levelv=0.25 "
               b"smua.source.output=smua.OUTPUT_ON")
    assert smu.outputs_on()["a"] and smu.levels()["a"] == 0.25
    assert ask(smu, "print(smua.source.levelv)") == "2.50000e-01"  # print: format.asciiprecision 6, %e
    smu.handle(b"smua.source.levelv=3")
    assert ask(smu, q).startswith("5005,") and smu.levels()["a"] == 0.25  # beyond the fixed 1 V range, output on
    smu.handle(b"smuc.source.levelv=0")
    assert ask(smu, q).startswith("-286,")
    smu.handle(b"format.data=format.REAL32 format.byteorder=format.LITTLEENDIAN smua.measure.count=3 "
               b"smua.nvbuffer1.clear() smua.measure.v(smua.nvbuffer1)")
    raw = smu.handle(b"printbuffer(1,3,smua.nvbuffer1.readings)")
    assert raw[:2] == b"#0" and np.allclose(np.frombuffer(raw[2:-1], "<f4"), 0.25)
    mtx.handle(b'channel.connectrule=channel.BREAK_BEFORE_MAKE channel.close("1A01,1B02")')
    mtx.handle(b'channel.exclusiveclose("1C03")')
    assert mtx.closed == {"1C03"} and ask(mtx, 'print(channel.getclose("allslots"))') == "1C03"
    mtx.handle(b'channel.close("9Z99")')
    assert ask(mtx, q).startswith("1115,") and mtx.closed == {"1C03"}


def test_board_dialect(emu):
    board = emu.model("board")
    assert ask(board, "BLK:CAT?") == "G1,4,2;G2,2,1;b1,2;b2,1"
    assert ask(board, "SOUR:VOLT:COUN?") == "2"
    for bad, code in ((b"g:rang?", "-100"), (b"G:SET:ASC W9,1", "-224"), (b"G:SET:ASC G2,1e-5", "-109"),
                      (b"G:SET:ASC G2,1e-5,1e-5,1e-5", "-223"), (b"G:SET:ASC G2,1e-5,5e-3", "-222"),
                      (b"OUTP ON;NUDG:STAT ON", "-224")):
        before = ask(board, "G:GET:ASC? G2")
        board.handle(bad)
        assert ask(board, "SYST:ERR?").startswith(code), bad
        assert ask(board, "G:GET:ASC? G2") == before  # refused whole: nothing changed
    board.handle(b"G:SET:ASC G2,2e-5,3e-5")
    assert np.allclose([float(v) for v in ask(board, "G:GET:ASC? G2").split(",")], [2e-5, 3e-5])
    board.handle(b"SOUR:VOLT:ASC 0.5,-0.25")
    board.handle(b"OUTP ON")
    assert board.source_level("0") == 0.5
    board.handle(b"*RST")
    assert not board.output and not board.dac.any()
    assert np.allclose([float(v) for v in ask(board, "G:GET:ASC? G2").split(",")], 1e-6)  # cells at g_min


def test_board_watchdog_switches_off_after_the_link_is_lost(emu):
    board = emu.model("board")
    board.watchdog_s = 0.2
    s = socket.create_connection(("127.0.0.1", emu.servers["board"].port), timeout=2)
    s.sendall(b"SOUR:VOLT:ASC 0.5,0.1\nOUTP ON\n")
    assert wait_for(lambda: board.output)
    s.close()
    assert wait_for(lambda: not board.output and not board.dac.any(), 3.0)
    assert board.watchdog_trips == 1


def test_pulse_programming_of_the_memristive_station_over_the_emulator():
    """The shipped 2600 + 707B + DAQ6510 station: read-verify pulses move the twin's memristive cells."""
    from pathlib import Path

    station = load_station(Path(__file__).resolve().parents[2] / "protocols" / "stations" / "memristive_2600_707b.yaml")
    devices = [{"kind": "range", "g_min": 0.01, "g_max": 5.0},
               {"kind": "pulse", "alpha_set": 0.1, "alpha_reset": 0.1, "v_threshold_v": 0.5, "v_ref_v": 1.0}]
    with Emulator(station, {"devices": devices}, speed=SPEED) as e:
        with LabCrossbar(Topology(layers=(2, 2, 1)), e.station, source="memristive") as xbar:
            g = {"G1": torch.tensor([[2.0, 0.8], [1.0, 3.0]]), "G2": torch.tensor([[0.6], [1.5]])}
            report = xbar.program(g)
            assert report.n_failed == 0 and e.world.pulses == report.writes > 6
            held = e.world.twin.read_conductances()
            for name, value in g.items():
                torch.testing.assert_close(report.achieved[name], value, rtol=0.05, atol=0.0)  # the tolerance
                torch.testing.assert_close(held[name], report.achieved[name], rtol=1e-5, atol=1e-6)
            m = xbar.measure(torch.tensor([[0.2, -0.2]]), nudge=Nudge(1.0, torch.tensor([[0.1]])), n_samples=2)
            assert m.output.shape == (1, 1)
        assert all(e.wait_safe().values()) and e.model("mtx").closed == set()
        assert {n: list(m.errors) for n, m in e.models.items() if m.errors} == {}


def test_the_2600_driver_reads_every_reply_it_asks_for_over_the_emulator():
    """Each driver query is one line that prints once (print, or printbuffer's block), and the driver reads
    that line: after pulses, reads and error checks a sentinel query gets its own answer, not a reply left
    in the buffer (the 2600B ends each printed line on its own)."""
    from pathlib import Path

    station = load_station(Path(__file__).resolve().parents[2] / "protocols" / "stations" / "memristive_2600_707b.yaml")
    devices = [{"kind": "range", "g_min": 0.01, "g_max": 5.0},
               {"kind": "pulse", "alpha_set": 0.1, "alpha_reset": 0.1, "v_threshold_v": 0.5, "v_ref_v": 1.0}]
    with Emulator(station, {"devices": devices}, speed=SPEED) as e:
        with LabCrossbar(Topology(layers=(2, 2, 1)), e.station, source="memristive") as xbar:
            xbar.program({"G1": torch.tensor([[2.0, 0.8], [1.0, 3.0]]), "G2": torch.tensor([[0.6], [1.5]])})
            smu_in, smu_prog = xbar.instruments["smu_in"], xbar.instruments["smu_prog"]
            xbar.measure(torch.tensor([[0.2, -0.2]]), n_samples=2)
            v = smu_in.read_voltages(["a", "b"], 3)
            assert v.shape == (3, 2) and np.allclose(v, [smu_in.last_levels["a"], smu_in.last_levels["b"]])
            assert smu_prog.read_current("b", 0.1, 1.0) == 0.0  # no cell routed: the 707B is open
            for smu in (smu_in, smu_prog):
                smu.raise_errors("the reads")
                assert smu.ask("print(localnode.model)").strip() == e.model(smu.name).model_name
        assert {n: list(m.errors) for n, m in e.models.items() if m.errors} == {}


@pytest.mark.parametrize("name,on", [("k2400", ":SOUR:VOLT"), ("k2600", "levelv")])
def test_smu_compliance_trip_stops_the_request_and_leaves_the_sources_safe(emu, name, on):
    from hil.drivers.base import InstrumentError

    with LabCrossbar(TOPO, emu.station, source="all_kinds") as xbar:
        xbar.program({"G1": torch.full((4, 2), 1.0), "G2": torch.full((2, 1), 1.0)})
        fault = emu.inject(name, "trip", on=on, after=1)
        with pytest.raises(InstrumentError, match=name):
            for _ in range(3):
                xbar.measure(torch.tensor([[0.3, 0.2, -0.2, 0.1], [0.1, -0.1, 0.2, 0.0]]))
        assert fault.fired == 1 and not any(emu.model(name).outputs_on().values())
    assert all((safe := emu.wait_safe()).values()), safe


def test_a_pulse_without_a_pulse_model_is_an_error_in_the_queue_and_the_link_stays_up():
    """A twin with no `pulse` device model cannot say what a pulse does to the routed cell: the emulated
    2602B queues an error (errorqueue.count / errorqueue.next(), as the 2600B reports a script error), the
    line runs to its end (the level back at 0 V) and the same connection answers the next command."""
    from pathlib import Path

    station = load_station(Path(__file__).resolve().parents[2] / "protocols" / "stations" / "memristive_2600_707b.yaml")
    with Emulator(station, {"sigma": 0.0}, speed=SPEED) as e:
        with socket.create_connection(("127.0.0.1", e.servers["mtx"].port), timeout=10) as mtx:
            mtx.sendall(b'channel.exclusiveclose("1A01,1B03") print(channel.getclose("allslots"))\n')
            assert mtx.makefile("rb").readline().strip() in (b"1A01;1B03", b"1B03;1A01")  # G1[0, 0] routed
        with socket.create_connection(("127.0.0.1", e.servers["smu_prog"].port), timeout=10) as s:
            lines = s.makefile("rb")
            s.sendall(b"smub.source.func=smub.OUTPUT_DCVOLTS smub.source.output=smub.OUTPUT_ON\n")
            s.sendall(b"smub.source.levelv=0.8 delay(0.0001) smub.source.levelv=0\n")
            s.sendall(b"print(errorqueue.count)\n")
            assert float(lines.readline()) == 1.0
            s.sendall(b'code,msg=errorqueue.next() print(string.format("%d,%s",code,msg))\n')
            code, _, msg = lines.readline().decode().strip().partition(",")
            assert int(code) != 0 and "pulse" in msg
            s.sendall(b"print(smub.source.levelv, errorqueue.count)\n")
            assert [float(v) for v in lines.readline().split()] == [0.0, 0.0]
        assert e.world.pulses == 0
