"""Protocol tests of the DAQ6510 driver: buffer sized for the scan, the instrument's scan order, one binary fetch.

Replies are written from the DAQ6510 reference manual: `:ROUT:SCAN:CRE?` answers the scan's
channel list, `:TRAC:POIN n,"defbuffer1"` sizes (and clears) the default buffer, and
`:TRAC:DATA? 1,n,"defbuffer1",READ` returns the readings in scan order.
"""

from __future__ import annotations

import numpy as np
import pytest
from hilep_driver_helpers import block
from pymeasure.test import expected_protocol

from hil.drivers.base import OverloadError
from hil.drivers.keithley_daq6510 import KeithleyDAQ6510, parse_channel_list

NOERR = ("SYST:ERR?", '0,"No error"')
CONFIGURE = [(":FORM:DATA SRE;:FORM:BORD SWAP", None), NOERR,
             (':SENS:FUNC "VOLT:DC",(@101,102);:SENS:VOLT:RANG 10,(@101,102);:SENS:VOLT:NPLC 1,(@101,102);'
              ":ROUT:SCAN:CRE (@101,102)", None), NOERR, (":ROUT:SCAN:CRE?", "(@101:102)")]


def _scan(n: int, k: int) -> str:
    return f':TRAC:POIN {max(n * k, 10)},"defbuffer1";:TRAC:CLE "defbuffer1";:ROUT:SCAN:COUN:SCAN {n};:INIT;*WAI'


def test_n_sample_read_is_two_transactions(n_samples):
    n = n_samples
    data = np.linspace(-1, 1, 2 * n).reshape(n, 2)
    pairs = [*CONFIGURE, (_scan(n, 2), None), (f':TRAC:DATA? 1,{2 * n},"defbuffer1",READ', block(data))]
    with expected_protocol(KeithleyDAQ6510, pairs) as daq:
        daq.configure()
        daq.configure_reads(["101", "102"], 2.0, 1.0)
        out = daq.read_voltages(["101", "102"], n)
    assert len(pairs) - len(CONFIGURE) == 2
    np.testing.assert_allclose(out, data.astype(np.float32))


def test_the_buffer_is_sized_before_a_scan_that_needs_it():
    """Failed before the fix: 60 000 readings went into defbuffer1 with no `:TRAC:POIN`, whatever its size."""
    n = 30_000
    data = np.zeros((n, 2))
    pairs = [*CONFIGURE, (':TRAC:POIN 60000,"defbuffer1";:TRAC:CLE "defbuffer1";:ROUT:SCAN:COUN:SCAN 30000;:INIT;'
                          "*WAI", None), (':TRAC:DATA? 1,60000,"defbuffer1",READ', block(data))]
    with expected_protocol(KeithleyDAQ6510, pairs) as daq:
        daq.configure()
        daq.configure_reads(["101", "102"], 2.0, 1.0)
        assert daq.read_voltages(["101", "102"], n).shape == (n, 2)


def test_readings_are_placed_by_the_scan_order_the_instrument_reports():
    """Failed before the fix: readings were placed in the station's order, not the scan's."""
    pairs = [(':SENS:FUNC "VOLT:DC",(@105,101);:SENS:VOLT:RANG 1,(@105,101);:SENS:VOLT:NPLC 1,(@105,101);'
              ":ROUT:SCAN:CRE (@105,101)", None), NOERR, (":ROUT:SCAN:CRE?", "(@101,105)"),
             (_scan(1, 2), None), (':TRAC:DATA? 1,2,"defbuffer1",READ', block([-0.25, 0.5]))]
    with expected_protocol(KeithleyDAQ6510, pairs) as daq:
        daq.configure_reads(["105", "101"], 1.0, 1.0)
        np.testing.assert_allclose(daq.read_voltages(["105", "101"], 1), [[0.5, -0.25]])


def test_overload_is_refused_naming_instrument_channel_and_range():
    pairs = [*CONFIGURE, (_scan(1, 2), None), (':TRAC:DATA? 1,2,"defbuffer1",READ', block([0.1, -9.9e37]))]
    with expected_protocol(KeithleyDAQ6510, pairs, name="dmm") as daq:
        daq.configure()
        daq.configure_reads(["101", "102"], 2.0, 1.0)
        with pytest.raises(OverloadError, match=r"channel 102 of dmm: overload reading \(-9\.9E\+37, sample 1\) on "
                                                r"the 10 V range"):
            daq.read_voltages(["101", "102"], 1)


def test_channel_list_replies():
    assert parse_channel_list("(@101:103,110)") == [101, 102, 103, 110]
    assert parse_channel_list('"(@105,101)"') == [105, 101]


def test_shutdown_aborts():
    with expected_protocol(KeithleyDAQ6510, [(":ABOR", None)]) as daq:
        daq.shutdown()
