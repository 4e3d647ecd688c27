"""Protocol tests of the Keithley 2400 driver: chunked TRAC reads, strict levels, write-only shutdown."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hilep_driver_helpers import block0
from pymeasure.test import expected_protocol

from hil.drivers.keithley_2400 import Keithley2400

#: the 2400 manual, TRACe subsystem: `:TRACe:POINts <n>`, n = 1 to 2500 (pymeasure's 1024 is not the instrument's)
MANUAL_POINTS = 2500

NOERR = ("SYST:ERR?", '0,"No error"')


def test_configure_format():
    with expected_protocol(Keithley2400, [(":FORM:ELEM VOLT;:FORM:DATA REAL,32;:FORM:BORD SWAP", None),
                                          NOERR]) as smu:
        smu.configure()


def test_configure_source_then_level():
    pairs = [(":SOUR:FUNC VOLT;:SOUR:VOLT:MODE FIXED", None), (":SOUR:VOLT:RANG 1", None),
             (":SENS:CURR:PROT 0.0001", None), (":SOUR:VOLT 0", None), (":OUTP ON", None), NOERR,
             (":SOUR:VOLT 0.5", None)]
    with expected_protocol(Keithley2400, pairs) as smu:
        smu.configure_source([""], 1.0, 1e-4)
        smu.apply_levels({"": 0.5})
        with pytest.raises(ValueError):
            smu.apply_levels({"": 1.01})
        with pytest.raises(ValueError):
            smu.compliance_current = 2e-4


def test_configure_voltmeter_asks_the_line_frequency():
    pairs = [(':SOUR:FUNC CURR;:SOUR:CURR 0;:SENS:FUNC "VOLT";:SENS:VOLT:PROT 2;:SYST:AZER OFF', None),
             (":SENS:VOLT:NPLC 1", None), (":SYST:LFR?", "60"), (":OUTP ON", None), NOERR]
    with expected_protocol(Keithley2400, pairs) as smu:
        smu.configure_reads([""], 2.0, 1.0, autozero=False)
    assert (smu.timing.line_hz, smu.timing.autozero) == (60.0, False)
    assert smu.timing.conversion_s() == pytest.approx(1 / 60)


def _read_pairs(n: int, data: np.ndarray) -> list:
    pairs = []
    for k in range(math.ceil(n / MANUAL_POINTS)):
        c = min(MANUAL_POINTS, n - k * MANUAL_POINTS)
        pairs.append((f":TRAC:CLE;:TRAC:POIN {c};:TRAC:FEED SENS;:TRAC:FEED:CONT NEXT;:TRIG:COUN {c};:INIT;*WAI",
                      None))
        pairs.append((":TRAC:DATA?", block0(data[k * MANUAL_POINTS: k * MANUAL_POINTS + c])))
    return pairs


def test_n_sample_read_chunks_at_the_manuals_2500(n_samples):
    """TRAC:POIN holds 1..2500 points: two transactions per chunk of <= 2500 readings, never a larger TRIG:COUN."""
    n = n_samples
    data = np.linspace(0, 1, n)
    pairs = _read_pairs(n, data)
    with expected_protocol(Keithley2400, pairs) as smu:
        out = smu.read_voltages([""], n)
    np.testing.assert_allclose(out[:, 0], data.astype(np.float32))
    assert len(pairs) == 2 * math.ceil(n / 2500)  # 2 for N = 1 and 100, 4 for N = 5000
    assert all(f"TRIG:COUN {c}" not in p[0] for p in pairs for c in range(2501, 5001))


def test_a_2500_point_read_is_one_buffer_fill():
    """Failed before the fix (chunks of 1024: 1024 + 1024 + 452); the manual allows all 2500 in one fill."""
    data = np.linspace(-1, 1, 2500)
    pairs = [(":TRAC:CLE;:TRAC:POIN 2500;:TRAC:FEED SENS;:TRAC:FEED:CONT NEXT;:TRIG:COUN 2500;:INIT;*WAI", None),
             (":TRAC:DATA?", block0(data))]
    with expected_protocol(Keithley2400, pairs) as smu:
        out = smu.read_voltages([""], 2500)
    np.testing.assert_allclose(out[:, 0], data.astype(np.float32))


def test_overload_reading_is_refused_naming_the_instrument_and_range():
    """+9.9E+37 is the 2400's overflow code, not a voltage: refused, never returned."""
    from hil.drivers.base import InstrumentError

    pairs = [(':SOUR:FUNC CURR;:SOUR:CURR 0;:SENS:FUNC "VOLT";:SENS:VOLT:PROT 2;:SYST:AZER ON', None),
             (":SENS:VOLT:NPLC 1", None), (":SYST:LFR?", "50"), (":OUTP ON", None), NOERR,
             (":TRAC:CLE;:TRAC:POIN 3;:TRAC:FEED SENS;:TRAC:FEED:CONT NEXT;:TRIG:COUN 3;:INIT;*WAI", None),
             (":TRAC:DATA?", block0([0.1, 9.9e37, 0.2]))]
    with expected_protocol(Keithley2400, pairs, name="smu") as smu:
        smu.configure_reads([""], 2.0, 1.0)
        with pytest.raises(InstrumentError, match=r"smu: overload reading \(\+9\.9E\+37, sample 2\) on the 2 V "
                                                r"compliance range"):
            smu.read_voltages([""], 3)


def test_shutdown_ramps_down_and_switches_off():
    pairs = [(":SOUR:FUNC VOLT;:SOUR:VOLT:MODE FIXED", None), (":SOUR:VOLT:RANG 1", None),
             (":SENS:CURR:PROT 0.0001", None), (":SOUR:VOLT 0", None), (":OUTP ON", None), NOERR,
             (":SOUR:VOLT -0.2", None), (":SOUR:VOLT -0.1", None), (":SOUR:VOLT 0", None), (":OUTP OFF", None)]
    with expected_protocol(Keithley2400, pairs) as smu:
        smu.configure_source([""], 1.0, 1e-4)
        smu.apply_levels({"": -0.2})
        smu.shutdown()
