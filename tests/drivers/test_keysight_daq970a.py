"""Protocol tests of the DAQ970A / 34970A driver: one scan list, TRIG:COUN N, one READ?, readings placed by channel.

Replies are written from the DAQ970A/DAQ973A Programming Guide and the 34970A User's Guide:
a scan runs in ascending channel order whatever order `ROUT:SCAN` lists them in, and
`FORM:READ:CHAN ON` puts each reading's channel number after it (`+1.23456789E-01,101`).
"""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from hil.drivers.base import InstrumentError
from hil.drivers.keysight_daq970a import DAQ970A, Agilent34970A

NOERR = ("SYST:ERR?", '+0,"No error"')
FORMAT = ("FORM:READ:CHAN ON;:FORM:READ:TIME OFF;:FORM:READ:UNIT OFF;:FORM:READ:ALAR OFF", None)
CONFIGURE = [FORMAT, NOERR,
             ("CONF:VOLT:DC 1,(@101,102,103);:VOLT:DC:NPLC 0.02,(@101,102,103);:ZERO:AUTO ON,(@101,102,103);"
              ":TRIG:SOUR IMM", None),
             ("ROUT:SCAN (@101,102,103)", None), NOERR]


def scan_reply(data: np.ndarray, channels: list[int]) -> str:
    """What READ? answers: sweep by sweep, channels ascending, each reading followed by its channel."""
    order = np.argsort(channels)
    return ",".join(f"{row[j]:+.9E},{channels[j]}" for row in data for j in order)


def test_configure():
    with expected_protocol(DAQ970A, CONFIGURE) as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)


def test_n_sample_read_is_two_transactions(n_samples):
    n = n_samples
    data = np.arange(3 * n, dtype=float).reshape(n, 3) * 1e-3
    pairs = [*CONFIGURE, (f"TRIG:COUN {n}", None), ("READ?", scan_reply(data, [101, 102, 103]))]
    with expected_protocol(DAQ970A, pairs) as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)
        out = daq.read_voltages(["103", "101"], n)
    assert len(pairs) - len(CONFIGURE) == 2
    np.testing.assert_allclose(out, data[:, [2, 0]])


@pytest.mark.parametrize("cls", [DAQ970A, Agilent34970A], ids=["DAQ970A", "34970A"])
def test_a_scan_listed_out_of_order_reads_each_node_from_its_channel(cls):
    """Failed before the fix: the station lists [105, 101], the instrument scans 101 then 105, and the
    driver placed the readings in station order, swapping the two nodes silently."""
    v105, v101 = 0.5, -0.25
    pairs = [FORMAT, NOERR,
             ("CONF:VOLT:DC 1,(@105,101);:VOLT:DC:NPLC 1,(@105,101);:ZERO:AUTO ON,(@105,101);:TRIG:SOUR IMM", None),
             ("ROUT:SCAN (@105,101)", None), NOERR,
             ("TRIG:COUN 2", None),
             ("READ?", f"{v101:+.9E},101,{v105:+.9E},105,{v101:+.9E},101,{v105:+.9E},105")]
    with expected_protocol(cls, pairs) as daq:
        daq.configure()
        daq.configure_reads(["105", "101"], 1.0, 1.0)
        out = daq.read_voltages(["105", "101"], 2)
    np.testing.assert_allclose(out, [[v105, v101], [v105, v101]])


def test_a_sweep_with_the_wrong_channels_is_an_error():
    pairs = [*CONFIGURE, ("TRIG:COUN 1", None), ("READ?", "+1.0E-01,101,+2.0E-01,102,+3.0E-01,104")]
    with expected_protocol(DAQ970A, pairs) as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)
        with pytest.raises(InstrumentError, match=r"sweep 1 read channels \[101, 102, 104\]"):
            daq.read_voltages(["101"], 1)


@pytest.mark.parametrize("code", ["+9.90000000E+37", "-9.90000000E+37"])
def test_overload_is_refused_naming_instrument_channel_and_range(code):
    """Failed before the fix: +9.9E+37 came back as a voltage of 9.9e37 V."""
    pairs = [*CONFIGURE, ("TRIG:COUN 1", None), ("READ?", f"+1.0E-01,101,{code},102,+3.0E-01,103")]
    with expected_protocol(DAQ970A, pairs, name="daq") as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)
        with pytest.raises(InstrumentError, match=r"channel 102 of daq: overload reading \([+-]9\.9E\+37, sample 1\) "
                                                r"on the 1 V range"):
            daq.read_voltages(["101", "102", "103"], 1)


def test_short_reply_is_an_error():
    with expected_protocol(DAQ970A, [*CONFIGURE, ("TRIG:COUN 2", None), ("READ?", "0.1,101,0.2,102,0.3,103")]) as daq:
        daq.configure()
        daq.configure_reads(["101", "102", "103"], 1.0, 0.02)
        with pytest.raises(InstrumentError, match="expected 6 readings"):
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
