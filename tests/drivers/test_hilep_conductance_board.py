"""Protocol tests of the conductance board (dialect of drivers/board_scpi.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hilep_driver_helpers import block
from pymeasure.test import expected_protocol

from hil.drivers.base import ieee_block
from hil.drivers.hilep_conductance_board import ConductanceBoard

NOERR = ("SYST:ERR?", '0,"No error"')
CONFIGURE = [("BLK:CAT?", "G1,4,2;G2,2,1;b1,2;b2,1"), ("SOUR:VOLT:COUN?", "6"), NOERR]


def levels(values) -> bytes:
    return b"SOUR:VOLT:BLK " + ieee_block(np.asarray(values, dtype=float)) + b"\n"


def test_configure_learns_blocks_and_dacs():
    pairs = [*CONFIGURE, (levels([0] * 6), None), ("OUTP ON", None), NOERR, ("NUDG:STAT OFF", None)]
    with expected_protocol(ConductanceBoard, pairs) as board:
        board.configure()
        assert board.blocks == {"G1": (4, 2), "G2": (2, 1), "b1": (2,), "b2": (1,)}
        board.configure_source(["0", "1", "2", "3"], 1.0, 1e-4)
        board.configure_nudge(1e-6, 1e-3)


def test_program_block_is_one_binary_write_and_read_back():
    g = np.arange(8, dtype=float).reshape(4, 2) * 1e-5
    pairs = [*CONFIGURE, (b"G:SET G1," + ieee_block(g.ravel()) + b"\n", None), NOERR,
             ("G:GET? G1", block(g.ravel()))]
    with expected_protocol(ConductanceBoard, pairs) as board:
        board.configure()
        board.set_block("G1", g)
        np.testing.assert_allclose(board.get_block("G1"), g.astype(np.float32))
        with pytest.raises(ValueError):
            board.set_block("G1", g.T)  # wrong shape: nothing sent
        with pytest.raises(ValueError):
            board.set_block("G9", g)


def test_ascii_transfer():
    pairs = [*CONFIGURE, ("G:SET:ASC b1,1e-06,-2e-06", None), NOERR, ("G:GET:ASC? b1", "1e-06,-2e-06")]
    with expected_protocol(ConductanceBoard, pairs, binary=False) as board:
        board.configure()
        board.set_block("b1", np.array([1e-6, -2e-6]))
        np.testing.assert_allclose(board.get_block("b1"), [1e-6, -2e-6])


def test_levels_one_write_for_all_dacs_and_limits():
    pairs = [*CONFIGURE, (levels([0] * 6), None), ("OUTP ON", None), NOERR,
             (levels([0.5, 0, 0, -0.25, 0, 0]), None)]
    with expected_protocol(ConductanceBoard, pairs) as board:
        board.configure()
        board.configure_source(["0", "3"], 1.0, 1e-4)
        board.apply_levels({"0": 0.5, "3": -0.25})
        with pytest.raises(ValueError):
            board.apply_levels({"0": 1.5})
        with pytest.raises(ValueError):
            board.apply_levels({"6": 0.1})


def test_nudge_conductance_is_strict():
    pairs = [("NUDG:STAT OFF", None), ("NUDG:G 0.0001", None), ("NUDG:STAT ON", None)]
    with expected_protocol(ConductanceBoard, pairs) as board:
        board.configure_nudge(1e-6, 1e-3)
        board.nudge_conductance = 1e-4
        board.nudge_enabled = True
        with pytest.raises(ValueError):
            board.nudge_conductance = 2e-3


def test_shutdown_ramps_all_dacs_together_then_off():
    pairs = [*CONFIGURE, (levels([0] * 6), None), ("OUTP ON", None), NOERR,
             (levels([0.2, -0.1, 0, 0, 0, 0]), None),
             (levels([0.1, -0.05, 0, 0, 0, 0]), None), (levels([0] * 6), None),
             ("NUDG:STAT OFF", None), ("OUTP OFF", None)]
    with expected_protocol(ConductanceBoard, pairs) as board:
        board.configure()
        board.configure_source(["0", "1"], 1.0, 1e-4)
        board.apply_levels({"0": 0.2, "1": -0.1})
        board.shutdown()
