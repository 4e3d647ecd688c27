"""`hil instruments list` and `hil instruments check`, run as a user runs them (real subprocesses, in parallel)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hilep_fake_tcp import FakeInstrument, write_station

STATIONS = Path(__file__).resolve().parents[1] / "stations"
HIL = shutil.which("hil", path=str(Path(sys.executable).parent)) or shutil.which("hil")

pytestmark = pytest.mark.skipif(HIL is None, reason="the hil console script is not installed")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _variant(tmp_path, good: Path, name: str, edit) -> Path:
    data = yaml.safe_load(good.read_text())
    edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def fakes(tmp_path):
    board, daq = FakeInstrument("conductance_board"), FakeInstrument("daq970a")
    good = tmp_path / "good.yaml"
    write_station(good, board, daq)
    yield board, daq, good
    board.kill()
    daq.kill()


def test_unreachable_address_exits_2_with_one_line_and_writes_nothing(tmp_path, fakes):
    """The whole path a user takes: the console script, a refused connection, exit code 2."""
    board, daq, good = fakes
    port = _closed_port()
    path = _variant(tmp_path, good, "unreachable", lambda d: d["instruments"]["daq"].update(
        address=f"TCPIP0::127.0.0.1::{port}::SOCKET"))
    proc = subprocess.run([HIL, "instruments", "check", str(path)], capture_output=True, text=True, timeout=90)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1
    assert f"instruments.daq.address: cannot connect to 'TCPIP0::127.0.0.1::{port}::SOCKET'" in lines[0]
    assert board.messages() == []  # every session opens before the first *IDN?


def _main(argv: list[str], capsys) -> tuple[int, str, str]:
    from hil.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "name,edit,message",
    [
        ("typo", lambda d: d["limits"].update(compliance_ma=1.0), "limits.compliance_ma: unknown key"),
        ("missing", lambda d: d["instruments"].pop("daq"), "wiring.layers.0.0: no instrument named 'daq'"),
        ("limit", lambda d: d["limits"].update(v_abs_max=-2), "limits.v_abs_max: Input should be greater than 0"),
    ],
)
def test_bad_station_exits_2_naming_the_key(tmp_path, fakes, capsys, name, edit, message):
    board, daq, good = fakes
    code, out, err = _main(["instruments", "check", str(_variant(tmp_path, good, name, edit))], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert board.messages() == [] and daq.messages() == []


def test_check_a_good_station_and_list(capsys):
    code, out, err = _main(["instruments", "check", str(STATIONS / "sim_station.yaml")], capsys)
    assert code == 0, err
    assert "HIL-EP,GBOARD-8" in out and "errors: none" in out and "dry run" in out and out.strip().endswith("ok")
    code, out, err = _main(["instruments", "list", "--backend", f"{STATIONS / 'sim_devices.yaml'}@sim",
                            "--query", "?*"], capsys)
    assert code == 0 and "ASRL1::INSTR" in out and "TCPIP0::127.0.0.1::5024::SOCKET" in out


def test_check_reports_a_wiring_problem(tmp_path, capsys):
    data = yaml.safe_load((STATIONS / "sim_station.yaml").read_text())
    data["wiring"]["inputs"] = ["board.0:2", "board.7"]  # the simulated board has 4 DACs
    data["instruments"] = {k: {**v, "visa_library": f"{STATIONS / 'sim_devices.yaml'}@sim"}
                           for k, v in data["instruments"].items()}
    path = tmp_path / "wiring.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = _main(["instruments", "check", str(path)], capsys)
    assert code == 2 and "inputs node 3: board.7: no DAC channel '7' (the board has 4)" in err
