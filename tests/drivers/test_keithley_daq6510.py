"""Protocol tests of the DAQ6510 driver: scan into defbuffer1, one binary fetch."""

from __future__ import annotations

import numpy as np
from hilep_driver_helpers import block
from pymeasure.test import expected_protocol

from hil.drivers.keithley_daq6510 import KeithleyDAQ6510

NOERR = ("SYST:ERR?", '0,"No error"')
CONFIGURE = [(":FORM:DATA SRE;:FORM:BORD SWAP", None), NOERR,
             (':SENS:FUNC "VOLT:DC",(@101,102);:SENS:VOLT:RANG 10,(@101,102);:SENS:VOLT:NPLC 1,(@101,102);'
              ":ROUT:SCAN:CRE (@101,102)", None), NOERR]


def test_n_sample_read_is_two_transactions(n_samples):
    n = n_samples
    data = np.linspace(-1, 1, 2 * n).reshape(n, 2)
    pairs = [*CONFIGURE,
             (f':TRAC:CLE "defbuffer1";:ROUT:SCAN:COUN:SCAN {n};:INIT;*WAI', None),
             (f':TRAC:DATA? 1,{2 * n},"defbuffer1",READ', block(data))]
    with expected_protocol(KeithleyDAQ6510, pairs) as daq:
        daq.configure()
        daq.configure_reads(["101", "102"], 2.0, 1.0)
        out = daq.read_voltages(["101", "102"], n)
    assert len(pairs) - len(CONFIGURE) == 2
    np.testing.assert_allclose(out, data.astype(np.float32))


def test_shutdown_aborts():
    with expected_protocol(KeithleyDAQ6510, [(":ABOR", None)]) as daq:
        daq.shutdown()
