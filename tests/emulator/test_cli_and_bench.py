"""`hil emulate` as a user runs it (a separate process serving a station), and the `hil bench` figures."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import torch
from hilep_emulator_helpers import RUN, STATION
from hilep_testing import wait_for

from hil.drivers.lab import LabCrossbar
from hil.interface import Topology
from hil.station import load_station

HIL = shutil.which("hil") or str(sys.executable).replace("python", "hil")


def test_hil_emulate_serves_a_station_that_labcrossbar_opens(tmp_path):
    out = tmp_path / "emulated.yaml"
    proc = subprocess.Popen([HIL, "emulate", str(STATION), "--config", str(RUN), "--out", str(out),
                             "--duration-s", "60", "--speed", "100"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # a fresh `hil` process imports torch: minutes on a loaded CI machine (8 s of CPU, 100 s seen on 2 shared cores)
        assert wait_for(lambda: out.exists() and out.stat().st_size > 0 or proc.poll() is not None, 300)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        station = load_station(out)
        assert all("127.0.0.1" in spec.address and spec.address.endswith("::SOCKET")
                   for spec in station.instruments.values())
        with LabCrossbar(Topology(layers=(1568, 32, 10)), station, source=str(out)) as xbar:
            m = xbar.measure(torch.zeros(1, 1568), n_samples=2)
            assert m.voltages[0].shape == (1, 32) and m.output.shape == (1, 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=180)  # shutdown and interpreter exit, on a loaded machine
    assert proc.returncode == 0, stderr
    assert "board" in stdout and "TCPIP0::127.0.0.1::" in stdout and str(out) in stdout


def test_bench_reports_nodelay_and_nagle_in_the_same_run():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="hil.benches") if e.name == "emulator"]
    figures = ep.load()(0.4)
    for label in ("nodelay", "nagle"):
        assert figures[f"emulator_{label}_queries_per_s"] > 0
        assert figures[f"emulator_{label}_read_latency_ms"] > 0
    assert figures["emulator_nagle_over_nodelay_read_latency"] > 1.0  # Nagle + delayed ACK: tens of ms
    print(figures)


def test_fault_option_parses_and_bad_faults_are_one_line_errors(tmp_path, capsys):
    from hilep_testing import hil

    from hil.simulators.emulator_cli import parse_fault

    assert parse_fault("daq:delay:on=READ,after=5,delay_s=3") == ("daq", "delay",
                                                                   {"on": "READ", "after": 5, "delay_s": 3.0})
    assert hil("emulate", str(STATION), "--duration-s", "0.1", "--fault", "daq:explode") == 2
    assert "unknown fault kind 'explode'" in capsys.readouterr().err
    out = tmp_path / "st.yaml"
    assert hil("emulate", str(STATION), "--duration-s", "0.1", "--out", str(out), "--fault",
               "board:error:on=G:SET,code=-222") == 0
    assert load_station(out).instruments["board"].address.startswith("TCPIP0::127.0.0.1::")


def test_hil_emulate_refuses_bad_numbers_in_one_line_and_creates_nothing(tmp_path, capsys):
    """Before: `--sigma -1` served a station with negative noise (exit 0), `--base-port 70000` and a port in use
    ended in an OverflowError / OSError traceback."""
    import socket

    from hilep_testing import hil

    out = tmp_path / "emulated.yaml"
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        cases = [(["--sigma", "-1"], "--sigma -1.0: expected a finite read-noise level >= 0"),
                 (["--base-port", "70000"], "--base-port 70000: expected 1..65534"),
                 (["--base-port", str(port)], f"board: cannot listen on 127.0.0.1:{port}"),
                 (["--speed", "0"], "--speed 0.0: expected a finite factor > 0"),
                 (["--line-freq", "55"], "--line-freq 55.0: expected 50 or 60")]
        for args, expected in cases:
            assert hil("emulate", str(STATION), "--out", str(out), "--duration-s", "0.1", *args) == 2, args
            captured = capsys.readouterr()
            lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
            assert len(lines) == 1 and expected in lines[0], (args, lines)
            assert "Traceback" not in captured.err
            assert not out.exists()
    finally:
        taken.close()


def test_hil_emulate_refuses_a_twin_without_a_pulse_model_for_a_pulse_programmed_station(tmp_path, capsys):
    """Before: the memristive station was served from a twin with no `pulse` model, and the first programming
    pulse killed the emulated 2602B's connection thread."""
    import threading
    from pathlib import Path

    import yaml
    from hilep_testing import hil

    root = Path(__file__).resolve().parents[2] / "protocols"
    station = root / "stations" / "memristive_2600_707b.yaml"
    raw = yaml.safe_load((root / "configs" / "xor1d-2-2-1.yaml").read_text())
    bare, pulsed = tmp_path / "bare.yaml", tmp_path / "pulsed.yaml"
    bare.write_text(yaml.safe_dump({**raw, "crossbar": {"kind": "twin", "sigma": 0.0}}))
    devices = [{"kind": "range", "g_min": 0.01, "g_max": 5.0},
               {"kind": "pulse", "alpha_set": 0.1, "alpha_reset": 0.1, "v_threshold_v": 0.5, "v_ref_v": 1.0}]
    pulsed.write_text(yaml.safe_dump({**raw, "crossbar": {"kind": "twin", "sigma": 0.0, "devices": devices}}))
    out = tmp_path / "emulated.yaml"
    before = {t.name for t in threading.enumerate()}
    for args, expected in (([], f"{station}: conductances.kind: pulse needs a twin"),
                           (["--config", str(bare)], f"{bare}: crossbar.devices: {station} programs")):
        assert hil("emulate", str(station), "--out", str(out), "--duration-s", "0.1", *args) == 2, args
        captured = capsys.readouterr()
        lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0] and "'pulse' device model" in lines[0], lines
        assert not out.exists() and {t.name for t in threading.enumerate()} == before  # nothing listened
    assert hil("emulate", str(station), "--config", str(pulsed), "--out", str(out), "--duration-s", "0.1") == 0
    assert out.exists()
