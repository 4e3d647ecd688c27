"""Protocol tests of the 707B driver: break-before-make routes and closed-channel bookkeeping."""

from __future__ import annotations

import pytest
from pymeasure.test import expected_protocol

from hil.drivers.base import InstrumentError
from hil.drivers.keithley_707b import Keithley707B

ERRQ = 'code,msg=errorqueue.next() print(string.format("%d,%s",code,msg))'
NOERR = (ERRQ, "0,Queue Is Empty")


def test_configure_route_and_bookkeeping():
    pairs = [('channel.connectrule=channel.BREAK_BEFORE_MAKE channel.open("allslots")', None), NOERR,
             ('channel.exclusiveclose("1A01,1B05")', None), NOERR,
             ('channel.exclusiveclose("1A02,1B05")', None), NOERR,
             ('channel.open("allslots")', None), NOERR]
    with expected_protocol(Keithley707B, pairs) as mtx:
        mtx.configure()
        mtx.route(["1B05", "1A01"])
        assert mtx.closed == {"1A01", "1B05"}
        mtx.route(["1A01", "1B05"])  # already so: nothing sent
        mtx.route(["1A02", "1B05"])
        mtx.open_all()
        assert mtx.closed == frozenset()


def test_bad_crosspoint_sends_nothing():
    with expected_protocol(Keithley707B, []) as mtx:
        for bad in (["1I01"], ["1A13"], ["7A01"], ["A01"]):
            with pytest.raises(ValueError):
                mtx.route(bad)
        assert mtx.closed == frozenset()


def test_error_after_route_leaves_state_unknown():
    pairs = [('channel.exclusiveclose("1A01")', None), (ERRQ, "1115,Parameter error"), (ERRQ, "0,Queue Is Empty")]
    with expected_protocol(Keithley707B, pairs) as mtx:
        with pytest.raises(InstrumentError, match="1115"):
            mtx.route(["1A01"])
        assert mtx.closed == frozenset()


def test_shutdown_opens_everything_with_one_write():
    with expected_protocol(Keithley707B, [('channel.open("allslots")', None)]) as mtx:
        mtx.closed = frozenset({"1A01"})
        mtx.shutdown()
        assert mtx.closed == frozenset()
