"""The memristive example station end to end: 2600s, a 707B and a DAQ6510 behind scripted sessions,
with a toy memristor model so that read-verify pulse programming has something to converge on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from pymeasure.adapters import Adapter

from hil.drivers.keithley_707b import Keithley707B
from hil.drivers.keithley_2600 import Keithley2600
from hil.drivers.keithley_daq6510 import KeithleyDAQ6510
from hil.drivers.lab import LabCrossbar
from hil.errors import LimitError
from hil.interface import Nudge, Topology
from hil.station import load_station

STATION = Path(__file__).resolve().parents[2] / "protocols" / "stations" / "memristive_2600_707b.yaml"
TOPO = Topology(layers=(2, 2, 1))
COLUMNS = {1: ("x", 0), 2: ("x", 1), 3: ("h", 0), 4: ("h", 1), 5: ("y", 0)}


class Scripted(Adapter):
    """A session whose replies come from a function of the command; every command is logged."""

    def __init__(self, respond) -> None:
        super().__init__()
        self.respond = respond
        self.sent: list[str] = []
        self.pending: bytes | None = None
        self.connection = None

    def _write(self, command: str, **kwargs) -> None:
        self.sent.append(command)
        reply = self.respond(command)
        self.pending = None if reply is None else reply.encode()

    def _read(self, **kwargs) -> str:
        reply, self.pending = self.pending, None
        assert reply is not None, f"read without a reply after {self.sent[-1]!r}"
        return reply.decode()

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs) -> bytes:
        reply, self.pending = self.pending, None
        return reply or b""


class Bench:
    """Toy memristors: SET pulses raise g by ~10 %, RESET pulses lower it by ~8 %, per pulse."""

    def __init__(self) -> None:
        self.g = {("G1", i, j): 5e-5 for i in range(2) for j in range(2)}
        self.g.update({("G2", i, 0): 5e-5 for i in range(2)})
        self.closed: set[str] = set()
        self.sweeps = 1

    def cell(self):
        a = next(int(c[2:]) for c in self.closed if c[1] == "A")
        b = next(int(c[2:]) for c in self.closed if c[1] == "B")
        (la, i), (_, j) = COLUMNS[a], COLUMNS[b]
        return ("G1" if la == "x" else "G2", i, j)

    def smu(self, cmd: str) -> str | None:
        if cmd == "*IDN?":
            return "Keithley Instruments Inc., Model 2602B, 4321, 3.2.2"
        if cmd.startswith("code,msg=errorqueue"):
            return "0,Queue Is Empty"
        m = re.match(r"smub\.source\.levelv=(\S+) delay", cmd)
        if m:
            v = float(m.group(1))
            key = self.cell()
            self.g[key] *= 1 + 0.1 * v / 0.8 if v > 0 else 1 - 0.08 * (-v) / 0.9
            return None
        m = re.match(r"smub\.source\.levelv=(\S+) print\(smub\.measure\.i\(\)\)", cmd)
        if m:
            return f"{self.g[self.cell()] * float(m.group(1)):.6e}"
        return None

    def mtx(self, cmd: str) -> str | None:
        if cmd == "*IDN?":
            return "Keithley Instruments Inc., Model 707B, 1234, 1.0"
        if cmd.startswith("code,msg=errorqueue"):
            return "0,Queue Is Empty"
        m = re.match(r'channel\.exclusiveclose\("(.*)"\)', cmd)
        if m:
            self.closed = set(m.group(1).split(","))
        elif 'channel.open("allslots")' in cmd:
            self.closed = set()
        return None

    def daq(self, cmd: str) -> str | None:
        if cmd == "*IDN?":
            return "KEITHLEY INSTRUMENTS,MODEL DAQ6510,04451234,1.7.12b"
        if cmd == "SYST:ERR?":
            return '0,"No error"'
        if cmd == ":SYST:LFR?":
            return "50"
        m = re.search(r"SCAN:COUN:SCAN (\d+)", cmd)
        if m:
            self.sweeps = int(m.group(1))
        if cmd.startswith(":TRAC:DATA?"):
            return ",".join(["0.01"] * (3 * self.sweeps))
        return None


@pytest.fixture
def bench():
    b = Bench()
    inst = {
        "smu_in": Keithley2600(Scripted(b.smu), name="smu_in", binary=False),
        "smu_prog": Keithley2600(Scripted(b.smu), name="smu_prog", binary=False),
        "mtx": Keithley707B(Scripted(b.mtx), name="mtx"),
        "daq": KeithleyDAQ6510(Scripted(b.daq), name="daq", binary=False),
    }
    xbar = LabCrossbar(TOPO, load_station(STATION), source=str(STATION), instruments=inst)
    yield b, inst, xbar
    xbar.close()


def test_pulse_programming_converges_and_reports(bench):
    b, inst, xbar = bench
    g = {"G1": torch.tensor([[2.0, 0.8], [1.0, 3.0]]), "G2": torch.tensor([[0.6], [1.5]]),
         "b1": torch.zeros(2)}
    report = xbar.program(g)
    assert report.failed == {}  # no bias sources: 0 A on every node, which is what zero biases ask
    torch.testing.assert_close(report.achieved["b1"], torch.zeros(2))
    for name in ("G1", "G2"):
        torch.testing.assert_close(report.achieved[name], g[name], rtol=0.05, atol=0.0)
    assert report.writes > 10  # pulses
    pulses = [c for c in inst["smu_prog"].adapter.sent if "delay(" in c]
    amplitudes = [float(re.match(r"smub\.source\.levelv=(\S+)", c).group(1)) for c in pulses]
    assert max(abs(a) for a in amplitudes) <= 1.5  # pulse_v_abs_max
    assert inst["mtx"].adapter.sent[-2] == 'channel.open("allslots")'
    # a target the cap cannot reach is reported, not silently accepted
    hard = xbar.program({"G1": torch.full((2, 2), 4.9)})
    assert hard.failed.get("G1", 0) > 0


def test_measure_with_a_fixed_nudge_conductance(bench):
    b, inst, xbar = bench
    xbar.program({"G1": torch.ones(2, 2), "G2": torch.ones(2, 1)})
    m = xbar.measure(torch.tensor([[0.2, -0.2]]), nudge=Nudge(1.0, torch.tensor([[0.1]])), n_samples=4)
    assert m.n_samples == 4 and m.output.shape == (1, 1)
    mtx = inst["mtx"].adapter.sent
    assert 'channel.exclusiveclose("1C05")' in mtx and mtx[-2] == 'channel.open("allslots")'
    assert "smua.source.levelv=0.1" in inst["smu_prog"].adapter.sent[-2]  # ramped nudge source
    with pytest.raises(LimitError, match="fixed at 0.0001 S"):
        xbar.measure(torch.zeros(1, 2), nudge=Nudge(2.0, torch.zeros(1, 1)))
    with pytest.raises(LimitError, match="0.3 V"):
        xbar.measure(torch.tensor([[0.35, -0.35]]))


def test_biases_on_a_memristive_crossbar_are_zero_not_nan(bench):
    """Before: biases it did not write came back as NaN, so the next program() of the controller's copy was
    refused (`program: bias b1 needs up to nan A`); with no bias sources every node gets 0 A."""
    _, _, xbar = bench
    assert all(torch.equal(xbar.read_conductances()[b], torch.zeros(n)) for b, n in (("b1", 2), ("b2", 1)))
    report = xbar.program({"b1": torch.tensor([0.05, -0.05])})
    assert report.failed == {"b1": 2}  # asked for currents the station cannot give: reported
    torch.testing.assert_close(report.achieved["b1"], torch.zeros(2))  # what the nodes get
    assert xbar.program({"b1": report.achieved["b1"]}).failed == {}
