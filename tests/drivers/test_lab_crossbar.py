"""LabCrossbar end to end: a pyvisa-sim station, and real loopback sockets to fake instruments."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hilep_fake_tcp import FakeInstrument, decode_levels, write_station
from hilep_testing import wait_for

from hil.drivers.lab import LabCrossbar
from hil.errors import ConfigError, LimitError
from hil.interface import Crossbar, Nudge, Topology

STATIONS = Path(__file__).resolve().parents[1] / "stations"
SIM = STATIONS / "sim_station.yaml"
TOPO = Topology(layers=(4, 2, 1), g_unit=1e-4)


def spy(xbar: LabCrossbar) -> list[tuple[str, str]]:
    """Record every command any instrument session is sent from now on."""
    sent: list[tuple[str, str]] = []
    for name, inst in xbar.instruments.items():
        adapter = inst.adapter
        w, wb = adapter.write, adapter.write_bytes

        def write(cmd, _w=w, _n=name, **kw):
            sent.append((_n, cmd))
            return _w(cmd, **kw)

        def write_bytes(data, _wb=wb, _n=name, **kw):
            sent.append((_n, data.decode("latin-1")))
            return _wb(data, **kw)

        adapter.write, adapter.write_bytes = write, write_bytes
    return sent


@pytest.fixture
def sim():
    with LabCrossbar.from_spec(TOPO, {"kind": "lab", "station": str(SIM)}, seed=0, source="run.yaml") as xbar:
        yield xbar


def test_sim_station_program_and_measure_end_to_end(sim):
    assert isinstance(sim, Crossbar)
    g = {"G1": torch.linspace(0.1, 0.8, 8).reshape(4, 2), "G2": torch.tensor([[0.2], [0.3]]),
         "b1": torch.tensor([0.01, -0.01]), "b2": torch.tensor([0.0])}
    report = sim.program(g)
    assert report.n_failed == 0 and report.n_clipped == 0 and report.writes == 4
    for name, value in g.items():
        torch.testing.assert_close(report.achieved[name], value, rtol=1e-6, atol=1e-9)
    back = sim.read_conductances()
    torch.testing.assert_close(back["G1"], g["G1"], rtol=1e-6, atol=1e-9)
    x = torch.tensor([[0.5, 0.2, -0.5, -0.2], [0.1, 0.0, -0.1, 0.0]])
    m = sim.measure(x, n_samples=1)
    assert [tuple(v.shape) for v in m.voltages] == [(2, 2), (2, 1)]
    torch.testing.assert_close(m.voltages[0], torch.tensor([[0.3, -0.2], [0.3, -0.2]]))
    mb = sim.measure(x[:1], nudge=Nudge(0.5, torch.tensor([[0.3]])))
    assert mb.output.shape == (1, 1) and mb.n_samples == 1


def test_open_crossbar_through_the_entry_point():
    from hil.registry import open_crossbar

    xbar = open_crossbar(TOPO, {"kind": "lab", "station": str(SIM)}, seed=0, source="cfg.yaml")
    try:
        assert type(xbar).__name__ == "LabCrossbar"
    finally:
        xbar.close()


def test_program_clips_to_the_device_range_and_counts(sim):
    g1 = torch.full((4, 2), 0.5)
    g1[0, 0], g1[1, 1] = 50.0, -1.0  # 5 mS and negative: outside [1 uS, 1 mS]
    report = sim.program({"G1": g1})
    assert report.clipped == {"G1": 2}
    assert report.achieved["G1"][0, 0].item() == pytest.approx(10.0)  # g_max_s / g_unit
    assert report.achieved["G1"][1, 1].item() == pytest.approx(0.01)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: x.measure(torch.tensor([[1.2, 0.0, 0.0, 0.0]])),
        lambda x: x.measure(torch.tensor([[0.1, 0.0, 0.0, float("nan")]])),
        lambda x: x.measure(torch.zeros(3, 4), nudge=Nudge(0.5, torch.tensor([[0.1], [0.1], [1.5]]))),
        lambda x: x.measure(torch.zeros(1, 4), nudge=Nudge(-0.5, torch.zeros(1, 1))),
        lambda x: x.measure(torch.zeros(1, 4), nudge=Nudge(100.0, torch.zeros(1, 1))),  # 10 mS > g_max
        lambda x: x.program({"b1": torch.tensor([2.0, 0.0])}),  # 200 uA bias > 100 uA compliance
    ],
    ids=["input", "nan", "target", "negative-beta", "beta-range", "bias"],
)
def test_over_limit_request_raises_and_sends_nothing(sim, call):
    sent = spy(sim)
    with pytest.raises(LimitError):
        call(sim)
    assert sent == []


def test_cell_power_limit_checked_before_measure(tmp_path):
    text = SIM.read_text().replace("cell_power_max_w: 1.0e-2", "cell_power_max_w: 1.0e-5")
    station = tmp_path / "station.yaml"
    station.write_text(text.replace("sim_devices.yaml@sim", f"{STATIONS / 'sim_devices.yaml'}@sim"))
    with LabCrossbar.open(TOPO, station) as xbar:
        xbar.program({"G1": torch.full((4, 2), 5.0)})  # 0.5 mS
        sent = spy(xbar)
        with pytest.raises(LimitError, match="G1"):
            xbar.measure(torch.tensor([[0.5, 0.0, -0.5, 0.0]]))  # 0.5 mS * (1 V)^2 = 0.5 mW
        assert sent == []
        xbar.measure(torch.tensor([[0.05, 0.0, -0.05, 0.0]]))  # 0.5 mS * (0.1 V)^2 = 5 uW: fine


def test_topology_mismatch_names_the_key():
    with pytest.raises(ConfigError, match=r"wiring\.inputs: 4 channels for 6 input nodes"):
        LabCrossbar.from_spec(Topology(layers=(6, 2, 1)), {"kind": "lab", "station": str(SIM)},
                              seed=0, source="cfg.yaml")
    with pytest.raises(ConfigError, match=r"cfg.yaml: crossbar\.stations: unknown key \(did you mean 'station'\?\)"):
        LabCrossbar.from_spec(TOPO, {"kind": "lab", "stations": str(SIM)}, seed=0, source="cfg.yaml")


# --- real sockets --------------------------------------------------------------------------
TCP_TOPO = Topology(layers=(2, 2, 1), g_unit=1e-4)


@pytest.fixture
def fakes(tmp_path):
    board, daq = FakeInstrument("conductance_board"), FakeInstrument("daq970a")
    station = tmp_path / "station.yaml"
    write_station(station, board, daq)
    yield board, daq, station
    board.kill()
    daq.kill()


def test_tcp_nodelay_and_constant_transactions_per_read(fakes):
    import socket

    board, daq, station = fakes
    with LabCrossbar.open(TCP_TOPO, station) as xbar:
        for inst in xbar.instruments.values():
            conn = inst.adapter.connection
            sock = conn.visalib.sessions[conn.session].interface
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        counts = {}
        x = torch.zeros(1, 2)
        for n in (1, 100, 5000):
            before = len(daq.messages())
            m = xbar.measure(x, n_samples=n)
            counts[n] = len(daq.messages()) - before
            assert m.voltages[0].shape == (1, 2) and m.n_samples == n
        assert counts == {1: 2, 100: 2, 5000: 2}  # TRIG:COUN N and READ?
        assert daq.text()[-2:] == ["TRIG:COUN 5000", "READ?"]
        # a write then a query (the pattern of every read): ~0.3 ms on loopback with Nagle off,
        # ~44 ms with it on (the write's segment waits for the delayed ACK)
        daq_inst = xbar.instruments["daq"]
        t0 = time.perf_counter()
        for _ in range(20):
            daq_inst.write("TRIG:COUN 1")
            daq_inst.identify()
        assert (time.perf_counter() - t0) / 20 < 0.025


def test_ramp_rate_respected_on_the_wire(fakes):
    board, daq, station = fakes
    with LabCrossbar.open(TCP_TOPO, station) as xbar:
        start = len(board.messages())
        xbar.measure(torch.tensor([[0.8, -0.8]]))
        xbar.measure(torch.tensor([[-0.3, 0.3]]))
    assert wait_for(lambda: board.text()[-1:] == ["OUTP OFF"])  # the server thread may lag the client
    levels = [v for v in map(decode_levels, board.messages()[start:]) if v is not None]
    steps = np.abs(np.diff(np.vstack([np.zeros(3), *levels]), axis=0))
    assert steps.max() <= 20.0 * 0.005 + 1e-6  # ramp_v_per_s * ramp_step_s
    assert np.allclose(levels[-1], 0.0)  # and back to 0 V on close
    assert board.text()[-2:] == ["NUDG:STAT OFF", "OUTP OFF"]


@pytest.mark.parametrize("death", ["silent", "closed"])
def test_safe_state_returns_within_its_timeout_on_a_dead_link(fakes, death, caplog):
    board, daq, station = fakes
    xbar = LabCrossbar.open(TCP_TOPO, station)
    xbar.config = xbar.config.model_copy(update={"cleanup_timeout_s": 1.0})
    xbar.measure(torch.tensor([[0.9, -0.9]]))
    if death == "silent":
        board.mode = daq.mode = "silent"
    else:
        board.kill()
        daq.kill()
        time.sleep(0.05)
    caplog.set_level(logging.ERROR)
    t0 = time.monotonic()
    xbar.close()
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0 + 2 * 0.3  # deadline, plus the outputs-off writes' own short timeouts
    if death == "closed":
        assert "could not" in caplog.text and "board" in caplog.text


def test_unreachable_address_is_a_config_error_and_nothing_is_written(tmp_path):
    import socket

    board = FakeInstrument("conductance_board")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # a closed port: connection refused
    dead = FakeInstrument("daq970a")
    dead.kill()
    station = tmp_path / "station.yaml"
    write_station(station, board, dead)
    text = station.read_text().replace(dead.address, f"TCPIP0::127.0.0.1::{port}::SOCKET")
    station.write_text(text)
    try:
        with pytest.raises(ConfigError, match=rf"instruments\.daq\.address: cannot connect to .*{port}"):
            LabCrossbar.open(TCP_TOPO, station)
        assert board.messages() == []
    finally:
        board.kill()


def test_check_spec_validates_without_opening(tmp_path):
    from hil.registry import check_crossbar

    check_crossbar({"kind": "lab", "station": str(SIM)}, "cfg.yaml")
    with pytest.raises(ConfigError, match="no such file"):
        check_crossbar({"kind": "lab", "station": str(tmp_path / "none.yaml")}, "cfg.yaml")
    # relative to the config file when not found from the working directory
    (tmp_path / "st.yaml").write_text(SIM.read_text().replace(
        "sim_devices.yaml@sim", f"{STATIONS / 'sim_devices.yaml'}@sim"))
    check_crossbar({"kind": "lab", "station": "st.yaml"}, str(tmp_path / "run.yaml"))


def test_dropped_session_is_reopened_with_back_off(fakes, caplog):
    board, daq, station = fakes
    with LabCrossbar.open(TCP_TOPO, station) as xbar:
        xbar.measure(torch.zeros(1, 2), n_samples=3)
        daq.drop_clients()
        time.sleep(0.05)
        caplog.set_level(logging.WARNING)
        m = xbar.measure(torch.zeros(1, 2), n_samples=3)
        assert m.voltages[0].shape == (1, 2)
        assert "session dropped" in caplog.text and "reconnecting" in caplog.text


def test_a_late_reply_on_a_serial_line_never_answers_a_later_query(fakes, caplog):
    """A serial line keeps what the instrument sends after the port is reopened: the late reply to a READ?
    that timed out must not answer the retried READ? (nor the next one: every read one reply behind)."""
    board, daq, station = fakes
    daq.late(r"^READ\?", delay_s=2.0, after=2)  # 1 s past the READ? timeout (timeout_s 1.0 + the scan)
    with LabCrossbar.open(TCP_TOPO, station) as xbar:
        got = [xbar.measure(torch.zeros(1, 2)).voltages[0] for _ in range(5)]
        assert "reconnecting" in caplog.text
        # each read is the reply to its own READ?: the fake's readings are the number of their READ?
        reads = [int(v[0, 0]) for v in got]
        assert reads[:2] == [1, 2] and reads[-1] == daq.reads, (reads, daq.reads)
        assert reads == sorted(set(reads))
        assert xbar.instruments["daq"].identify() == "Keysight Technologies,DAQ970A,MY00000001,A.02.02"


def test_error_queue_checked_after_source_levels(fakes):
    board, daq, station = fakes
    with LabCrossbar.open(TCP_TOPO, station) as xbar:
        start = len(board.messages())
        xbar.measure(torch.tensor([[0.05, -0.05]]))
        sent = board.text()[start:]
        assert sent[0].startswith("SOUR:VOLT:BLK") and sent[1] == "SYST:ERR?"


def test_silent_instrument_at_open_is_a_config_error_within_its_timeout(fakes):
    board, daq, station = fakes
    board.mode = "silent"  # accepts the connection, never answers
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"instruments\.board\.address: no answer to \*IDN\?"):
        LabCrossbar.open(TCP_TOPO, station)
    assert time.monotonic() - t0 < 1.0 + 1.5  # timeout_s of the board, plus start-up
    assert board.text() == ["*IDN?"] and daq.text() == []  # nothing configured, nothing switched on
