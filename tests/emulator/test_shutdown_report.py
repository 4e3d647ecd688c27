"""What the shutdown says when an instrument cannot be reached: only what is true, and once.

A DAQ drives nothing: when it is gone, the cleanup says that it could not be reached, not that
its (absent) outputs must be checked by hand.  An instrument with outputs (the board) whose safe
state could not be confirmed gets the 'check by hand' warning, once, naming it alone.
"""

from __future__ import annotations

import logging

from hilep_emulator_helpers import RUN
from hilep_testing import hil, runs

GONE = {"boot_s": 600.0}  # switched off: the connection closes and connects are refused from then on


def train(emu, ws) -> int:
    return hil("train", str(RUN), "--station", str(emu.station_path), "--workspace", str(ws), "--quiet",
               "--set", "data.train_subset=48", "--set", "data.test_subset=16")


def cleanup_lines(caplog) -> list[str]:
    """The warnings and errors the safe state logged (the drivers' cleanup and the crossbar's summary)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            and r.name in ("hil.drivers.base", "hil.drivers.safety")]


def test_a_daq_that_is_gone_is_reported_unreachable_once_without_check_by_hand(emulator, tmp_path, caplog):
    emulator.inject("daq", "reboot", on=r"READ\?", after=20, **GONE)
    assert train(emulator, tmp_path / "ws") == 2
    lines = cleanup_lines(caplog)
    assert len(lines) == len(set(lines)), lines  # nothing said twice
    assert not [ln for ln in lines if "by hand" in ln or "safe state" in ln], lines
    (line,) = [ln for ln in lines if ln.startswith("daq:")]
    assert "could not be reached" in line and "drives no outputs" in line, line
    board = emulator.model("board")
    assert not board.output and not board.nudge_on and not board.dac.any()
    (run,) = runs(tmp_path / "ws")
    assert run["status"] == "failed"


def test_a_board_that_is_gone_gets_one_check_by_hand_warning_naming_it(emulator, tmp_path, caplog):
    emulator.inject("board", "reboot", on=r"^SOUR:VOLT:BLK", after=40, **GONE)
    assert train(emulator, tmp_path / "ws") == 2
    lines = cleanup_lines(caplog)
    assert len(lines) == len(set(lines)), lines
    (hand,) = [ln for ln in lines if "by hand" in ln]
    assert "board" in hand and "daq" not in hand, hand
    assert "check" in hand and "0 V" in hand and "off" in hand, hand


def test_closing_after_a_failed_safe_state_does_not_try_it_again(emulator, caplog):
    """The runner asks for the safe state, then closes: with nothing sent between them, once is said once."""
    import torch

    from hil.drivers.lab import LabCrossbar
    from hil.interface import Topology

    with LabCrossbar(Topology(layers=(1568, 32, 10)), emulator.station, source=str(emulator.station_path)) as xbar:
        xbar.measure(torch.full((1, 1568), 10.0))
        emulator.inject("board", "reboot", **GONE)  # on its next message: the first step of the ramp down
        xbar.safe_state()
        assert xbar.cleanup_failures == ["board"]
        said = cleanup_lines(caplog)
        caplog.clear()
    assert len(said) == 1 and "board" in said[0] and "by hand" in said[0], said
    assert cleanup_lines(caplog) == []  # close(): not again
    assert xbar.cleanup_failures == ["board"]
