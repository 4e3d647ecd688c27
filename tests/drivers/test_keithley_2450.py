"""Protocol tests of the Keithley 2450 driver: defbuffer1 reads in two transactions whatever N."""

from __future__ import annotations

import numpy as np
import pytest
from hilep_driver_helpers import block
from pymeasure.test import expected_protocol

from hil.drivers.keithley_2450 import Keithley2450

NOERR = ("SYST:ERR?", '0,"No error"')
SOURCE = [(":SOUR:FUNC VOLT", None), (":SOUR:VOLT:RANG 1", None), (":SOUR:VOLT:ILIM 0.0001", None),
          (":SOUR:VOLT 0", None), (":OUTP ON", None), NOERR]


def test_configure():
    with expected_protocol(Keithley2450, [(":FORM:DATA SRE;:FORM:BORD SWAP", None), NOERR, *SOURCE]) as smu:
        smu.configure()
        smu.configure_source([""], 1.0, 1e-4)


def test_configure_voltmeter():
    pairs = [(':SOUR:FUNC CURR;:SOUR:CURR 0;:SOUR:CURR:VLIM 1;:SENS:FUNC "VOLT";:SENS:VOLT:AZER ON', None),
             (":SENS:VOLT:NPLC 0.5", None), (":SYST:LFR?", "60"), (":OUTP ON", None), NOERR]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_reads([""], 1.0, 0.5)
    assert smu.timing.conversion_s() == pytest.approx(0.5 / 60 * 3)  # autozero: reference and zero conversions


def test_n_sample_read_is_two_transactions(n_samples):
    n = n_samples
    data = np.random.default_rng(0).normal(0.1, 1e-3, n)
    pairs = [(f':TRAC:POIN {max(n, 10)},"defbuffer1";:TRAC:CLE "defbuffer1";:COUN {n};:TRAC:TRIG "defbuffer1";*WAI',
              None),
             (f':TRAC:DATA? 1,{n},"defbuffer1",READ', block(data))]
    with expected_protocol(Keithley2450, pairs) as smu:
        out = smu.read_voltages([""], n)
    assert len(pairs) == 2
    np.testing.assert_allclose(out[:, 0], data.astype(np.float32))


def test_program_level_and_limit():
    with expected_protocol(Keithley2450, [*SOURCE, (":SOUR:VOLT -0.75", None)]) as smu:
        smu.configure_source([""], 1.0, 1e-4)
        smu.apply_levels({"": -0.75})
        with pytest.raises(ValueError):
            smu.apply_levels({"": -1.5})


def test_shutdown():
    pairs = [*SOURCE, (":SOUR:VOLT 0.15", None), (":SOUR:VOLT 0.075", None), (":SOUR:VOLT 0", None),
             (":OUTP OFF", None)]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_source([""], 1.0, 1e-4)
        smu.apply_levels({"": 0.15})
        smu.shutdown()


def test_overload_reading_is_refused():
    """+9.9E+37 in the buffer is the 2450's overflow code: refused with the instrument and the range."""
    from hil.drivers.base import InstrumentError

    pairs = [(':TRAC:POIN 10,"defbuffer1";:TRAC:CLE "defbuffer1";:COUN 2;:TRAC:TRIG "defbuffer1";*WAI', None),
             (':TRAC:DATA? 1,2,"defbuffer1",READ', block([9.9e37, 0.1]))]
    with expected_protocol(Keithley2450, pairs, name="k2450") as smu:
        with pytest.raises(InstrumentError, match=r"k2450: overload reading \(\+9\.9E\+37, sample 1\)"):
            smu.read_voltages([""], 2)


def test_an_error_queue_entry_names_the_last_command_in_the_instruments_words_without_its_time_stamp():
    """The 2450 appends `;severity;date time` to each message (as the emulator does): not part of the error."""
    from hil.drivers.base import QueuedError

    trip = '5074,"Output tripped; compliance, output off;1;2024/01/01 00:00:00.000"'
    with expected_protocol(Keithley2450, [(":SOUR:VOLT 0.05", None), ("SYST:ERR?", trip), NOERR]) as smu:
        smu.write(":SOUR:VOLT 0.05")
        with pytest.raises(QueuedError) as info:
            smu.raise_errors("source levels")
    err = info.value
    assert (err.code, err.message, err.command, err.rest) == (5074, "Output tripped; compliance, output off",
                                                              ":SOUR:VOLT 0.05", [])
    assert err.sent == "':SOUR:VOLT 0.05' (source levels)"
