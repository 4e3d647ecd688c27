"""Safety: no command outside the limits ever reaches a session (property-based), and every
exit path (normal, exception, SIGINT, SIGTERM, interpreter exit) ramps the sources to 0 V
and switches them off, observed on the wire of a fake instrument (signals: in real subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from hilep_fake_tcp import FakeInstrument, decode_levels, write_station
from hilep_testing import wait_for
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hil.drivers.lab import LabCrossbar
from hil.errors import LimitError
from hil.interface import Nudge, Topology

SIM = Path(__file__).resolve().parents[1] / "stations" / "sim_station.yaml"
TOPO = Topology(layers=(4, 2, 1), g_unit=1e-4)
V_MAX, STEP, G_MIN, G_MAX, I_MAX = 1.0, 100.0 * 0.001, 1e-6, 1e-3, 1e-4


@pytest.fixture(scope="module")
def sim():
    xbar = LabCrossbar.open(TOPO, SIM)
    sent: list[tuple[str, str]] = []
    for name, inst in xbar.instruments.items():
        w = inst.adapter.write

        def write(cmd, _w=w, _n=name, **kw):
            sent.append((_n, cmd))
            return _w(cmd, **kw)

        inst.adapter.write = write
    yield xbar, sent
    xbar.close()


volts = st.one_of(st.floats(-1.0, 1.0), st.floats(-1.6, 1.6, allow_nan=False))  # mostly in range
measure_req = st.tuples(
    st.just("measure"),
    st.integers(1, 2).flatmap(lambda b: st.lists(st.lists(volts, min_size=4, max_size=4), min_size=b, max_size=b)),
    st.one_of(st.none(), st.tuples(st.floats(-2.0, 15.0, allow_nan=False), volts)),
)
program_req = st.tuples(
    st.just("program"),
    st.lists(st.floats(-20.0, 20.0, allow_nan=False), min_size=8, max_size=8),
    st.lists(st.floats(-1.2, 1.2, allow_nan=False), min_size=2, max_size=2),
)


class Wire:
    """What the sessions were sent, checked against the station's limits."""

    def __init__(self) -> None:
        self.board = np.zeros(4)
        self.smu = 0.0

    def check(self, name: str, cmd: str) -> None:
        if name == "board" and cmd.startswith("SOUR:VOLT:ASC "):
            new = np.array([float(v) for v in cmd[14:].split(",")])
            assert np.all(np.abs(new) <= V_MAX + 1e-12), cmd
            assert np.all(np.abs(new - self.board) <= STEP + 1e-9), (cmd, self.board)
            self.board = new
        elif name == "smu" and cmd.startswith(":SOUR:VOLT "):
            v = float(cmd.split()[1])
            assert abs(v) <= V_MAX + 1e-12 and abs(v - self.smu) <= STEP + 1e-9, (cmd, self.smu)
            self.smu = v
        elif cmd.startswith("NUDG:G "):
            assert G_MIN <= float(cmd[7:]) <= G_MAX, cmd
        elif cmd.startswith("G:SET:ASC G"):
            values = np.array([float(v) for v in cmd.split(",")[1:]])
            assert np.all((values >= G_MIN) & (values <= G_MAX)), cmd
        elif cmd.startswith("G:SET:ASC b"):
            values = np.array([float(v) for v in cmd.split(",")[1:]])
            assert np.all(np.abs(values) <= I_MAX + 1e-15), cmd


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(st.one_of(measure_req, program_req), min_size=1, max_size=4))
def test_no_command_outside_the_limits_reaches_a_session(sim, requests):
    xbar, sent = sim
    wire = Wire()
    wire.board = xbar.instruments["board"].dac.copy()
    wire.smu = xbar.instruments["smu"].last_levels.get("", 0.0)
    for req in requests:
        start = len(sent)
        try:
            if req[0] == "measure":
                nudge = None if req[2] is None else Nudge(req[2][0], torch.full((len(req[1]), 1), req[2][1]))
                xbar.measure(torch.tensor(req[1]), nudge=nudge)
            else:
                xbar.program({"G1": torch.tensor(req[1]).reshape(4, 2), "b1": torch.tensor(req[2])})
            event(f"{req[0]} sent")
        except LimitError:
            event(f"{req[0]} refused")
            assert sent[start:] == [], "a refused request sent commands"
        for name, cmd in sent[start:]:
            wire.check(name, cmd)


# --- exit paths, in real subprocesses -------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from hil.interface import Topology
    from hil.drivers.lab import LabCrossbar
    mode, station = sys.argv[1], sys.argv[2]
    topo = Topology(layers=(2, 2, 1), g_unit=1e-4)
    with LabCrossbar.open(topo, station) as xb:
        xb.measure(torch.tensor([[0.6, -0.6]]))
        print("READY", flush=True)
        while True:  # until the signal lands
            xb.measure(torch.tensor([[0.6, -0.6]]))
            time.sleep(0.01)
""")


MODES = {"sigint": (130, -signal.SIGINT), "sigterm": (143,)}  # signals need a real process


@pytest.fixture(scope="module")
def exits(tmp_path_factory):
    """Run every exit path at once (one subprocess each, all in parallel); what each fake board saw."""
    tmp = tmp_path_factory.mktemp("exits")
    script = tmp / "run.py"
    script.write_text(SCRIPT)
    runs = {}
    try:
        for mode in MODES:
            board, daq = FakeInstrument("conductance_board"), FakeInstrument("daq970a")
            station = tmp / f"{mode}.yaml"
            write_station(station, board, daq)
            proc = subprocess.Popen([sys.executable, str(script), mode, str(station)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            runs[mode] = (proc, board, daq)
        results = {}
        for mode, (proc, board, _daq) in runs.items():
            ready = proc.stdout.readline().strip() == "READY"
            at_ready = len(board.messages())
            proc.send_signal(signal.SIGINT if mode == "sigint" else signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            wait_for(lambda b=board: b.text()[-1:] == ["OUTP OFF"], timeout_s=2.0)
            results[mode] = (ready, proc.returncode, proc.stderr.read()[-2000:], board.messages()[at_ready:])
        yield results
    finally:
        for proc, board, daq in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            board.kill()
            daq.kill()


def _check_ramp_down_and_off(after: list[bytes]) -> None:
    levels = [v for v in map(decode_levels, after) if v is not None]
    assert levels and np.allclose(levels[-1], 0.0), "no ramp to 0 V"
    peak = max(np.max(np.abs(v)) for v in levels)
    assert peak <= 0.6 + 1e-6 and len(levels) >= 6  # 0.6 V down in steps of <= 0.1 V
    assert [m.decode() for m in after[-2:]] == ["NUDG:STAT OFF", "OUTP OFF"]


@pytest.mark.parametrize("how", ["exit", "exception"])
def test_leaving_the_with_block_ramps_down_and_switches_off(tmp_path, how):
    board, daq = FakeInstrument("conductance_board"), FakeInstrument("daq970a")
    station = tmp_path / "station.yaml"
    write_station(station, board, daq)
    try:
        with pytest.raises(RuntimeError) if how == "exception" else nullcontext():
            with LabCrossbar.open(Topology(layers=(2, 2, 1), g_unit=1e-4), station) as xbar:
                xbar.measure(torch.tensor([[0.6, -0.6]]))
                at_ready = len(board.messages())
                if how == "exception":
                    raise RuntimeError("boom")
        assert wait_for(lambda: board.text()[-1:] == ["OUTP OFF"], timeout_s=2.0)
        _check_ramp_down_and_off(board.messages()[at_ready:])
    finally:
        board.kill()
        daq.kill()


@pytest.mark.parametrize("mode", list(MODES))
def test_every_signal_ramps_down_and_switches_off(exits, mode):
    ready, code, stderr, after = exits[mode]
    assert ready, stderr
    assert code in MODES[mode], stderr
    _check_ramp_down_and_off(after)


def test_interpreter_exit_hook_brings_the_station_to_its_safe_state(monkeypatch):
    import hil.drivers.safety as safety

    hooks = []
    monkeypatch.setattr(safety.atexit, "register", hooks.append)
    monkeypatch.setattr(safety.atexit, "unregister", lambda fn: fn in hooks and hooks.remove(fn))
    xbar = LabCrossbar.open(TOPO, SIM)
    xbar.measure(torch.tensor([[0.3, 0.0, -0.3, 0.0]]))
    sent = []
    board = xbar.instruments["board"]
    original = board._try
    board._try = lambda cmd: sent.append(cmd) or original(cmd)
    ours = [h for h in hooks if getattr(h, "__self__", None) is xbar]
    assert len(ours) == 1
    ours[0]()  # what the interpreter runs at exit when nobody closed the crossbar
    assert xbar._closed and ours[0] not in hooks
    assert sent[-3:] == ["SOUR:VOLT:ASC 0,0,0,0", "NUDG:STAT OFF", "OUTP OFF"]


def test_the_wire_checker_is_not_vacuous():
    wire = Wire()
    with pytest.raises(AssertionError):
        wire.check("board", "SOUR:VOLT:ASC 1.5,0,0,0")
    with pytest.raises(AssertionError):
        wire.check("board", "SOUR:VOLT:ASC 0.5,0,0,0")  # a jump faster than the ramp rate
    with pytest.raises(AssertionError):
        wire.check("board", "G:SET:ASC G1,0.002,1e-05")


def test_ctrl_c_during_cleanup_is_logged_not_raised(caplog):
    xbar = LabCrossbar.open(TOPO, SIM)
    xbar.measure(torch.tensor([[0.3, 0.0, -0.3, 0.0]]))
    board = xbar.instruments["board"]
    original, sent = board._try, []

    def interrupted(cmd):
        if not sent:
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, just as cleanup starts
        sent.append(cmd)
        return original(cmd)

    board._try = interrupted
    xbar.close()  # must not raise KeyboardInterrupt
    assert sent[-2:] == ["NUDG:STAT OFF", "OUTP OFF"]
    assert "Ctrl-C during cleanup" in caplog.text
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
