"""A late reply is never read as the reply to a later query, and retries that run out end in one line.

The e2e station (board + DAQ970A) over the emulator with no read noise, so that two reads of
the same inputs give the same voltages to the last bit: a read that timed out and was retried
must give exactly what a read without faults gives, and the next, different read its own.
"""

from __future__ import annotations

import pytest
import torch
from hilep_emulator_helpers import RUN, SPEED, STATION
from hilep_testing import hil, runs

from hil.drivers.lab import LabCrossbar
from hil.interface import Topology
from hil.simulators.emulator import Emulator
from hil.station import load_station

TOPO = Topology(layers=(1568, 32, 10))


@pytest.fixture
def quiet(tmp_path):
    with Emulator(load_station(STATION), {"sigma": 0.0}, seed=0, speed=SPEED) as emu:
        emu.station_path = emu.write_station(tmp_path / "emulated.yaml")
        yield emu


def inputs(seed: int) -> torch.Tensor:
    """Two images' worth of inputs, 0..200 mV (the station's v_unit is 1 mV)."""
    return torch.rand(2, 1568, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 200.0


def voltages(xbar: LabCrossbar, x: torch.Tensor) -> list[torch.Tensor]:
    return xbar.measure(x).voltages


def program(xbar: LabCrossbar) -> None:
    """Cells of 1..100 uS (the station's g_unit is 1 uS), no bias currents."""
    gen = torch.Generator().manual_seed(0)
    g = {k: 1.0 + 99.0 * torch.rand(shape, generator=gen) for k, shape in TOPO.blocks.items()}
    assert xbar.program(g).n_failed == 0


def test_a_read_retried_after_its_reply_came_late_gets_the_right_nodes(quiet, caplog):
    x1, x2 = inputs(1), inputs(2)
    with LabCrossbar(TOPO, quiet.station, source=str(quiet.station_path)) as xbar:
        program(xbar)
        ref1, ref2 = voltages(xbar, x1), voltages(xbar, x2)
        assert not torch.equal(ref1[0], ref2[0])
        # past the READ? timeout (1 s + 1.5 x the modelled 42-channel scan): the driver gives up and retries
        fault = quiet.inject("daq", "delay", on=r"READ\?", delay_s=3.0)
        got1 = voltages(xbar, x1)
        got2 = voltages(xbar, x2)
    assert fault.fired == 1 and "reconnecting" in caplog.text
    for got, ref in zip(got1 + got2, ref1 + ref2):
        assert torch.equal(got, ref)


def test_a_late_reply_at_open_is_not_read_as_the_reply_to_a_later_query(quiet):
    """`*ESR?` at open waits cleanup_timeout_s (0.3 s here); its reply 0.8 s late must not answer the next query."""
    x = inputs(1)
    with LabCrossbar(TOPO, quiet.station, source=str(quiet.station_path)) as xbar:
        program(xbar)
        ref = voltages(xbar, x)
    fault = quiet.inject("daq", "delay", on=r"\*ESR\?", delay_s=0.8)
    with LabCrossbar(TOPO, quiet.station, source=str(quiet.station_path)) as xbar:
        assert fault.fired == 1
        assert "DAQ970A" in xbar.instruments["daq"].identify()
        assert xbar.instruments["daq"].check_errors() == []
        got = voltages(xbar, x)
    for a, b in zip(got, ref):
        assert torch.equal(a, b)


DEAD = [
    # scans that never end: every READ? from the 21st on goes unanswered, on every new session too
    ("hang", {"on": r"READ\?", "after": 20, "times": 10**6}, "(last: timeout)"),
    # switched off: the connection closes and connects are refused from then on
    ("reboot", {"on": r"READ\?", "after": 20, "boot_s": 600.0}, "(last: reconnected, but no answer"),
]


@pytest.mark.parametrize("kind,how,what", DEAD, ids=[k for k, _, _ in DEAD])
def test_a_daq_that_stops_answering_ends_the_run_in_one_line_exit_2_sources_safe(emulator, tmp_path, capsys,
                                                                                 kind, how, what):
    fault = emulator.inject("daq", kind, **how)
    capsys.readouterr()
    code = hil("train", str(RUN), "--station", str(emulator.station_path), "--workspace", str(tmp_path / "ws"),
               "--quiet", "--set", "data.train_subset=48", "--set", "data.test_subset=16")
    err = capsys.readouterr().err
    assert code == 2, err
    assert fault.fired >= 1
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    address = emulator.servers["daq"].address
    assert f"instruments.daq (daq970a at {address}): no reply to 'READ?'" in line, line
    assert "nor after 3 reconnects" in line and what in line and "check that it is on" in line, line
    assert all(emulator.wait_safe().values())
    board = emulator.model("board")
    assert not board.output and not board.dac.any()
    (run,) = runs(tmp_path / "ws")
    assert run["status"] == "failed"


def test_a_board_whose_watchdog_tripped_while_the_link_was_down_stops_the_run(quiet):
    """The board's link lost for more than 2 s (a cable, a starved host) trips its watchdog: DACs at 0 V,
    outputs off, the blocks kept.  Reads of the undriven network must never be passed on as a measurement."""
    from hil.drivers.base import InstrumentError

    station = quiet.station.model_copy(update={"instruments": {
        name: spec.model_copy(update={"reconnect_tries": 8}) for name, spec in quiet.station.instruments.items()}})
    x = inputs(1)
    with LabCrossbar(TOPO, station, source=str(quiet.station_path)) as xbar:
        program(xbar)
        ref = voltages(xbar, x)
        fault = quiet.inject("board", "unplug", on=r"^SOUR:VOLT", down_s=2.5)  # at the next level written
        with pytest.raises(InstrumentError, match="watchdog"):
            got = voltages(xbar, x)
            assert [torch.equal(a, b) for a, b in zip(got, ref)] == [True, True]  # (what it read, before the fix)
    assert fault.fired == 1 and quiet.model("board").watchdog_trips == 1
    assert all(quiet.wait_safe().values())
