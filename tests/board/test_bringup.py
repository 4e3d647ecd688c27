"""`hil instruments check STATION --read` over the emulated shipped station: every node read at 0 V.

The emulator's physics is a twin with white read noise sigma = 1e-3 V per reading and zero
bias currents, so at 0 V inputs every node sits at 0 V and each of its N = 32 reads is
N(0, sigma^2).  The sample std s of 32 reads has relative standard deviation about
1 / sqrt(2 * 31) = 0.127, so each node's s lies in [0.5, 1.5] sigma with probability
1 - 2e-4 (about 4 standard deviations); the mean of 32 reads has std sigma / sqrt(32), so
|mean| < 5 sigma / sqrt(32) = 0.9 mV holds with probability 1 - 6e-7 per node.  Fixed seed.
"""

from __future__ import annotations

import re

from hilep_board_helpers import fast_emulator, fast_ramp_station
from hilep_testing import hil

SIGMA = 1e-3


def test_read_check_shows_every_node_at_0_v_with_the_read_noise(tmp_path, capsys):
    station = fast_ramp_station("board_daq970a_2450.yaml", tmp_path)
    with fast_emulator(station, {"sigma": SIGMA}, seed=0) as emu:
        emulated = emu.write_station(tmp_path / "emulated.yaml")
        capsys.readouterr()
        assert hil("instruments", "check", str(emulated), "--read", "--samples", "32") == 0
        out = capsys.readouterr().out
        assert all((safe := emu.wait_safe()).values()), safe
    rows = re.findall(r"^\s+(hidden 1 \d|output 0)\s+(daq\.\d+)\s+(\S+)\s+(\S+)$", out, re.M)
    assert [r[1] for r in rows] == ["daq.101", "daq.102", "daq.103", "daq.104", "daq.105"]
    for _, _, mean, std in rows:
        assert abs(float(mean)) < 5 * SIGMA / 32**0.5
        assert 0.5 * SIGMA <= float(std) <= 1.5 * SIGMA
    assert "every source back at 0 V and off" in out


def test_read_check_warns_about_an_offset(tmp_path, capsys):
    station = fast_ramp_station("board_daq970a_2450.yaml", tmp_path)
    with fast_emulator(station, {"sigma": SIGMA}, seed=0) as emu:
        emulated = emu.write_station(tmp_path / "emulated.yaml")
        capsys.readouterr()
        # a threshold below the noise of one read: every node is reported, and the check still exits 0
        assert hil("instruments", "check", str(emulated), "--read", "--samples", "1", "--max-offset-v", "1e-9") == 0
    captured = capsys.readouterr()
    assert captured.err.count("warning:") == 5 and "daq.105" in captured.err
