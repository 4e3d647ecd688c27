"""Protocol tests of the DAQ970A / 34970A driver: one scan list, TRIG:COUN N, one READ?."""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from hil.drivers.keysight_daq970a import DAQ970A, Agilent34970A

NOERR = ("SYST:ERR?", '+0,"No error"')
CONFIGURE = [("FORM:READ:CHAN OFF;:FORM:READ:TIME OFF;:FORM:READ:UNIT OFF;:FORM:READ:ALAR OFF", None), NOERR,
             ("CONF:VOLT:DC 1,(@101,102,103);:VOLT:DC:NPLC 0.02,(@101,102,103);:TRIG:SOUR IMM", None),
             ("ROUT:SCAN (@101,102,103)", None), NOERR]


def test_configure():
    with expected_protocol(DAQ970A, CONFIGURE) as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)


def test_n_sample_read_is_two_transactions(n_samples):
    n = n_samples
    data = np.arange(3 * n, dtype=float).reshape(n, 3) * 1e-3
    reply = ",".join(f"{v:+.9E}" for v in data.ravel())
    pairs = [*CONFIGURE, (f"TRIG:COUN {n}", None), ("READ?", reply)]
    with expected_protocol(DAQ970A, pairs) as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)
        out = daq.read_voltages(["103", "101"], n)
    assert len(pairs) - len(CONFIGURE) == 2
    np.testing.assert_allclose(out, data[:, [2, 0]])


def test_short_reply_is_an_error():
    from hil.drivers.base import InstrumentError

    with expected_protocol(DAQ970A, [*CONFIGURE, ("TRIG:COUN 2", None), ("READ?", "0.1,0.2,0.3")]) as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)
        with pytest.raises(InstrumentError, match="expected 6"):
            daq.read_voltages(["101"], 2)


def test_bad_channel_sends_nothing():
    with expected_protocol(DAQ970A, []) as daq:
        with pytest.raises(ValueError):
            daq.scan = [101, 999]
        with pytest.raises(ValueError):
            daq.sweeps = 0


def test_34970a_memory_limit_and_shutdown():
    with expected_protocol(Agilent34970A, [*CONFIGURE, ("ABOR", None)]) as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)
        with pytest.raises(ValueError):
            daq.read_voltages(["101"], 20_000)  # 60 000 readings > 50 000
        daq.shutdown()
