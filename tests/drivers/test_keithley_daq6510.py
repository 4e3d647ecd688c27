"""Protocol tests of the DAQ6510 driver: a scan in ascending channel order, one binary fetch.

Replies are written from the DAQ6510 reference manual: `:TRAC:DATA? 1,n,"defbuffer1",READ`
returns the readings in scan order (binary: readings only, no channel element).
"""

from __future__ import annotations

import numpy as np
import pytest
from hilep_driver_helpers import block
from pymeasure.test import expected_protocol

from hil.drivers.base import InstrumentError
from hil.drivers.keithley_daq6510 import KeithleyDAQ6510

NOERR = ("SYST:ERR?", '0,"No error"')
CONFIGURE = [(":FORM:DATA SRE;:FORM:BORD SWAP", None), NOERR,
             (':SENS:FUNC "VOLT:DC",(@101,102);:SENS:VOLT:RANG 10,(@101,102);:SENS:VOLT:NPLC 1,(@101,102);'
              ':SENS:VOLT:AZER ON,(@101,102);:ROUT:SCAN:CRE (@101,102)', None), NOERR, (":SYST:LFR?", "50")]


def _scan(n: int, k: int = 2) -> str:
    return f':TRAC:POIN {max(n * k, 10)},"defbuffer1";:TRAC:CLE "defbuffer1";:ROUT:SCAN:COUN:SCAN {n};:INIT;*WAI'


def test_n_sample_read_is_two_transactions(n_samples):
    n = n_samples
    data = np.linspace(-1, 1, 2 * n).reshape(n, 2)
    pairs = [*CONFIGURE, (_scan(n), None), (f':TRAC:DATA? 1,{2 * n},"defbuffer1",READ', block(data))]
    with expected_protocol(KeithleyDAQ6510, pairs) as daq:
        daq.configure()
        daq.configure_reads(["101", "102"], 2.0, 1.0)
        out = daq.read_voltages(["101", "102"], n)
    assert len(pairs) - len(CONFIGURE) == 2
    np.testing.assert_allclose(out, data.astype(np.float32))


def test_a_station_listing_channels_out_of_order_gets_each_node_from_its_channel():
    """Failed before the fix: the scan was created in station order [105, 101] and mapped by position,
    so an instrument reading its list in ascending order swapped the nodes; now the scan is ascending."""
    pairs = [(':SENS:FUNC "VOLT:DC",(@101,105);:SENS:VOLT:RANG 1,(@101,105);:SENS:VOLT:NPLC 1,(@101,105);'
              ':SENS:VOLT:AZER ON,(@101,105);:ROUT:SCAN:CRE (@101,105)', None), NOERR, (":SYST:LFR?", "50"),
             (_scan(1), None), (':TRAC:DATA? 1,2,"defbuffer1",READ', block([-0.25, 0.5]))]
    with expected_protocol(KeithleyDAQ6510, pairs) as daq:
        daq.configure_reads(["105", "101"], 1.0, 1.0)
        np.testing.assert_allclose(daq.read_voltages(["105", "101"], 1), [[0.5, -0.25]])


def test_the_buffer_is_sized_before_a_scan_that_needs_it():
    """Failed before the fix: 60 000 readings went into defbuffer1 with no `:TRAC:POIN`, whatever its size."""
    n = 30_000
    pairs = [*CONFIGURE, (':TRAC:POIN 60000,"defbuffer1";:TRAC:CLE "defbuffer1";:ROUT:SCAN:COUN:SCAN 30000;:INIT;'
                          "*WAI", None), (':TRAC:DATA? 1,60000,"defbuffer1",READ', block(np.zeros((n, 2))))]
    with expected_protocol(KeithleyDAQ6510, pairs) as daq:
        daq.configure()
        daq.configure_reads(["101", "102"], 2.0, 1.0)
        assert daq.read_voltages(["101", "102"], n).shape == (n, 2)


def test_overload_is_refused_naming_instrument_channel_and_range():
    pairs = [*CONFIGURE, (_scan(1), None), (':TRAC:DATA? 1,2,"defbuffer1",READ', block([0.1, -9.9e37]))]
    with expected_protocol(KeithleyDAQ6510, pairs, name="dmm") as daq:
        daq.configure()
        daq.configure_reads(["101", "102"], 2.0, 1.0)
        with pytest.raises(InstrumentError, match=r"channel 102 of dmm: overload reading \(-9\.9E\+37, sample 1\) on "
                                                r"the 10 V range"):
            daq.read_voltages(["101", "102"], 1)


def test_shutdown_aborts():
    with expected_protocol(KeithleyDAQ6510, [(":ABOR", None)]) as daq:
        daq.shutdown()
