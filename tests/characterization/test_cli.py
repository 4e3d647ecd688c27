"""`hil characterize` and `hil calibrate` through the real CLI, in subprocesses (bounded in time)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hilep_testing import hil as in_process

from hil.simulators.calibration import load_calibration
from hil.store import Store

REPO = Path(__file__).resolve().parents[2]
SIM_STATION = REPO / "tests" / "stations" / "sim_station.yaml"
FAST = ["--set", "read.n_reads=4096", "--set", "read.nperseg=1024", "--quiet"]


def hil(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The `hil` console entry point, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from hil.cli import main; sys.argv[0] = 'hil'; main()", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env={**os.environ, "COLUMNS": "200"},
    )


EMU_STATION = Path(__file__).resolve().parent / "data" / "emu-station.yaml"


def test_characterize_twin_then_run_the_twin_from_its_calibration(tmp_path):
    ws, out = tmp_path / "ws", tmp_path / "out"
    r = hil("characterize", "--config", "twin", "--workspace", str(ws), "--out", str(out), *FAST, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "recommendation: target 5e-05 V: N = " in r.stdout
    for name in ("calibration.yaml", "summary.txt", "allan.png", "psd.png", "histograms.png"):
        assert (out / name).stat().st_size > 0, name
    cal = load_calibration(out / "calibration.yaml")  # exactly the twin's format
    assert [m.kind for m in cal.read_noise] == ["gaussian", "pink"]
    sigma = cal.read_noise[0].sigma_v
    assert sigma == pytest.approx(1e-4, rel=0.05)
    with Store(ws) as store:
        (run,) = store.runs(kind="characterize")
        assert run["status"] == "completed" and run["summary"]["recommended_n"] >= 1
        arts = store.artifacts(run["id"])
        assert {"summary", "calibration.yaml", "summary.txt", "allan.png", "psd.png", "histograms.png"} <= set(arts)
        assert yaml.safe_load(arts["calibration.yaml"]) == yaml.safe_load((out / "calibration.yaml").read_text())
    # close the loop (in-process, same code path as the CLI): a twin built from the calibration,
    # with no noise of its own, measures the same white noise
    from hil.protocols.characterize_noise import characterize_read, load_characterize_config, topology_for
    from hil.registry import open_crossbar

    cfg, _, source = load_characterize_config("twin", ["read.n_reads=4096", "read.nperseg=1024", "crossbar.sigma=0",
                                                       "crossbar.read_noise=[]",
                                                       f"crossbar.calibration={out / 'calibration.yaml'}"])
    with open_crossbar(topology_for(cfg, source), cfg.crossbar, seed=1, source=source) as twin:
        again = characterize_read(twin, cfg)
    assert again.combined["white_sigma_v"] == pytest.approx(sigma, rel=0.05)


def test_calibrate_twin_writes_devices(tmp_path):
    out = tmp_path / "out"
    rc = in_process("calibrate", "--config", "twin", "--no-read", "--workspace", str(tmp_path / "ws"),
                    "--out", str(out), "--set", "crossbar.read_noise=[]", "--set", "write.hold_s=[0.2, 0.4, 0.8]",
                    "--quiet")
    assert rc == 0
    cal = load_calibration(out / "calibration.yaml")
    kinds = {m.kind: m for m in cal.devices}
    assert set(kinds) == {"write_noise", "range", "drift"}
    assert kinds["range"].g_max == pytest.approx(1.0, rel=0.05)
    for name in ("write_noise.png", "drift.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("version: 1\nread_noise:\n  - {kind: pink, amplitude_v: 1.0e-5}\n",
         ["read_noise.0.corner_hz", "Field required"]),
    ],
    ids=["missing-key"],
)
def test_bad_calibration_file_exits_2_naming_the_key(tmp_path, text, fragments):
    bad = tmp_path / "cal.yaml"
    bad.write_text(text)
    ws = tmp_path / "ws"
    r = hil("characterize", "--config", "twin", "--workspace", str(ws), "--set", "crossbar.calibration=cal.yaml",
            *FAST, cwd=tmp_path, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cal.yaml" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    with Store(ws) as store:
        assert store.runs() == []  # nothing was measured, nothing recorded


@pytest.mark.skipif(importlib.util.find_spec("pyvisa_sim") is None, reason="pyvisa-sim not installed (test extra)")
def test_same_command_runs_on_lab_crossbar_over_pyvisa_sim(tmp_path):
    """The sim station's DAQ answers one sweep per READ? (N = 1), so reads come one per measure()."""
    out = tmp_path / "out"
    rc = in_process("characterize", "--crossbar", str(SIM_STATION), "--workspace", str(tmp_path / "ws"),
                    "--out", str(out), "--set", 'read.nodes=["1:0", "1:1", "2:0"]', "--set", "read.n_reads=256",
                    "--set", "read.chunk=1", "--set", "read.nperseg=64", "--quiet")
    assert rc == 0
    assert "on lab" in (out / "summary.txt").read_text()
    cal = load_calibration(out / "calibration.yaml")
    assert cal.read_noise[0].kind == "gaussian"  # the simulated DAQ answers constant readings: sigma 0
    assert cal.meta["crossbar"] == "lab" and cal.meta["sample_period_s"] > 0


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("version: 1\ndevices:\n  - {kind: write_noise, sigma_abss: 0.01}\n",
         ["cal.yaml: devices.0.sigma_abss", "unknown key"]),
        ("version: 2\n", ["cal.yaml: version"]),
        ("version: 1\nread_noise:\n  - {kind: gaussian, sigma_v: 1.0e-4\n", ["cal.yaml:", "malformed YAML"]),
        ("version: 1\ndevices:\n  - {kind: range, g_min: 0.5, g_max: 0.1}\n", ["cal.yaml: devices.0: g_max (0.1)"]),
    ],
    ids=["unknown-key", "bad-version", "truncated", "inverted-range"],
)
def test_more_bad_calibration_files_name_the_key(tmp_path, text, fragments):
    """The same path as the CLI's (config, overrides, open_crossbar), in-process to save subprocesses."""
    from hil.errors import UserError
    from hil.protocols.characterize_noise import load_characterize_config, topology_for
    from hil.registry import open_crossbar

    (tmp_path / "cal.yaml").write_text(text)
    cfg, _, source = load_characterize_config("twin", [f"crossbar.calibration={tmp_path / 'cal.yaml'}"])
    with pytest.raises(UserError) as err:
        open_crossbar(topology_for(cfg, source), cfg.crossbar, seed=0, source=source)
    assert err.value.exit_code == 2
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_same_commands_run_on_lab_crossbar_over_the_emulator(tmp_path):
    """LabCrossbar over loopback sockets to the SCPI emulator, whose DAQ reads a twin with white noise
    1e-4 and whose board writes with write noise and a range: the same commands, the same fits.

    8192 reads per node give sigma to ~0.6 %; the range is a mean over 32 cells with 5 % spread (~1 %).
    """
    from hil.simulators.emulator import Emulator
    from hil.station import load_station

    twin = {"sigma": 1e-4, "devices": [{"kind": "write_noise", "sigma_abs": 5.0, "sigma_rel": 0.03},
                                       {"kind": "range", "g_min": 50.0, "g_max": 800.0, "spread_rel": 0.05}]}
    with Emulator(load_station(EMU_STATION), twin, seed=0, speed=1000.0) as emu:  # 653 s of DAQ time in 0.65 s
        station = emu.write_station(tmp_path / "emulated.yaml")
        rc = in_process("characterize", "--crossbar", str(station), "--workspace", str(tmp_path / "ws"),
                        "--out", str(tmp_path / "read"), "--quiet", "--set", 'read.nodes=["1:0", "1:3", "2:1"]',
                        "--set", "read.n_reads=8192", "--set", "read.chunk=1024", "--set", "read.nperseg=1024")
        assert rc == 0
        rc = in_process("calibrate", "--no-read", "--crossbar", str(station), "--workspace", str(tmp_path / "ws"),
                        "--out", str(tmp_path / "write"), "--quiet", "--set", "write.hold_s=[0.05, 0.1]",
                        "--set", "write.levels=4", "--set", "write.ramp_points=8")
        assert rc == 0
    read = load_calibration(tmp_path / "read" / "calibration.yaml")
    assert read.meta["crossbar"] == "lab"
    assert read.read_noise[0].sigma_v == pytest.approx(1e-4, rel=0.05)
    rng = next(m for m in load_calibration(tmp_path / "write" / "calibration.yaml").devices if m.kind == "range")
    assert rng.g_min == pytest.approx(50.0, rel=0.15) and rng.g_max == pytest.approx(800.0, rel=0.15)
