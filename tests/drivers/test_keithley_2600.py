"""Protocol tests of the Keithley 2600B driver: the exact TSP it sends."""

from __future__ import annotations

import numpy as np
import pytest
from hilep_driver_helpers import block0
from pymeasure.test import expected_protocol

from hil.drivers.keithley_2600 import Keithley2600

ERRQ = 'code,msg=errorqueue.next() print(string.format("%d,%s",code,msg))'
NOERR = (ERRQ, "0,Queue Is Empty")


def test_configure_binary_format():
    with expected_protocol(Keithley2600, [("format.data=format.REAL32 format.byteorder=format.LITTLEENDIAN", None),
                                          NOERR]) as smu:
        smu.configure()


IDN_2636B = ("*IDN?", "Keithley Instruments Inc., Model 2636B, 4390001, 3.2.2")
IDN_2602B = ("*IDN?", "Keithley Instruments Inc., Model 2602B, 4390002, 3.2.2")


def test_configure_source_and_voltmeter():
    pairs = [
        IDN_2602B,
        ("smua.source.func=smua.OUTPUT_DCVOLTS", None),
        ("smua.source.rangev=1", None),
        ("smua.source.limiti=0.0001", None),
        ("smua.source.levelv=0", None),
        ("smua.source.output=1", None),
        NOERR,
        ("smub.source.func=smub.OUTPUT_DCAMPS smub.source.leveli=0", None),
        ("smub.source.limitv=1 smub.measure.autorangev=smub.AUTORANGE_ON smub.measure.autozero=smub.AUTOZERO_AUTO",
         None),
        ("smub.measure.nplc=0.1", None),
        ("smub.source.output=1", None),
        ("print(localnode.linefreq)", "6.00000e+01"),
        NOERR,
    ]
    with expected_protocol(Keithley2600, pairs) as smu:
        smu.identify()
        smu.configure_source(["a"], 1.0, 1e-4)
        smu.configure_reads(["b"], 1.0, 0.1)
    assert smu.timing.line_hz == 60.0


# the 2600B reference manual, "Available ranges": 2601B/2602B source 100 mV, 1 V, 6 V, 40 V;
# 2611B/2612B/2635B/2636B source 200 mV, 2 V, 20 V, 200 V (full scale 101 %)
@pytest.mark.parametrize("idn,v_max,rangev", [
    (IDN_2602B, 1.0, "1"), (IDN_2602B, 5.0, "6"), (IDN_2602B, 40.0, "40"),
    (IDN_2636B, 0.15, "0.2"), (IDN_2636B, 1.0, "2"), (IDN_2636B, 100.0, "200"),
], ids=["2602B-1V", "2602B-5V", "2602B-40V", "2636B-0.15V", "2636B-1V", "2636B-100V"])
def test_source_range_is_the_models(idn, v_max, rangev):
    """Failed before the fix: the range was max(0.1, v_max) within 0.1..40 V whatever the model."""
    pairs = [idn, ("smua.source.func=smua.OUTPUT_DCVOLTS", None), (f"smua.source.rangev={rangev}", None),
             ("smua.source.limiti=0.0001", None), ("smua.source.levelv=0", None), ("smua.source.output=1", None),
             NOERR]
    with expected_protocol(Keithley2600, pairs) as smu:
        smu.identify()
        smu.configure_source(["a"], v_max, 1e-4)


def test_beyond_the_models_ranges_sends_nothing():
    with expected_protocol(Keithley2600, [IDN_2602B]) as smu:
        smu.identify()
        with pytest.raises(ValueError, match="100 V is beyond the 2602B's ranges"):
            smu.configure_source(["a"], 100.0, 1e-4)
        with pytest.raises(ValueError, match="compliance 2 A is beyond the 2602B's 1.01 A at 30 V"):
            smu.configure_source(["a"], 30.0, 2.0)


def test_no_source_before_the_model_is_known():
    from hil.drivers.base import InstrumentError

    with expected_protocol(Keithley2600, []) as smu:
        with pytest.raises(InstrumentError, match="model unknown"):
            smu.configure_source(["a"], 1.0, 1e-4)


def test_n_sample_read_is_one_transaction(n_samples):
    n = n_samples
    data = np.linspace(-0.5, 0.5, 2 * n).reshape(n, 2)
    cmd = (f"smua.measure.count={n} smua.nvbuffer1.clear() smub.measure.count={n} smub.nvbuffer1.clear() "
           f"smua.measure.v(smua.nvbuffer1) smub.measure.v(smub.nvbuffer1) "
           f"printbuffer(1,{n},smua.nvbuffer1.readings,smub.nvbuffer1.readings)")
    pairs = [(cmd, block0(data))]
    with expected_protocol(Keithley2600, pairs) as smu:
        out = smu.read_voltages(["a", "b"], n)
    assert len(pairs) == 1
    np.testing.assert_allclose(out, data.astype(np.float32))


def test_ascii_read():
    with expected_protocol(Keithley2600, [("smua.measure.count=2 smua.nvbuffer1.clear() smua.measure.v(smua.nvbuffer1) "
                                           "printbuffer(1,2,smua.nvbuffer1.readings)", "0.1, 0.2")],
                           binary=False) as smu:
        assert smu.read_voltages(["a"], 2).tolist() == [[0.1], [0.2]]


def test_levels_are_validated_before_sending():
    with expected_protocol(Keithley2600, [IDN_2636B, ("smua.source.func=smua.OUTPUT_DCVOLTS", None),
                                          ("smua.source.rangev=2", None), ("smua.source.limiti=0.0001", None),
                                          ("smua.source.levelv=0", None), ("smua.source.output=1", None),
                                          NOERR, ("smua.source.levelv=0.25", None)]) as smu:
        smu.identify()
        smu.configure_source(["a"], 0.5, 1e-4)
        smu.apply_levels({"a": 0.25})
        with pytest.raises(ValueError):
            smu.apply_levels({"a": 0.6})
        with pytest.raises(ValueError):
            smu.channel("a").source_voltage = -0.51


def test_pulse_and_read_current():
    pairs = [("smub.source.levelv=1.2 delay(0.001) smub.source.levelv=0", None),
             ("smub.source.levelv=0.1 print(smub.measure.i()) smub.source.levelv=0", "1.5e-05")]
    with expected_protocol(Keithley2600, pairs) as smu:
        smu.pulse("b", 1.2, 1e-3, 2.0)
        assert smu.read_current("b", 0.1, 2.0) == pytest.approx(1.5e-5)
        with pytest.raises(ValueError):
            smu.pulse("b", 2.5, 1e-3, 2.0)


def test_shutdown_ramps_from_last_level_with_writes_only():
    pairs = [("smua.source.levelv=0.3", None),
             ("smua.source.levelv=0.2", None), ("smua.source.levelv=0.1", None), ("smua.source.levelv=0", None),
             ("smua.source.output=0", None)]
    with expected_protocol(Keithley2600, pairs) as smu:
        smu.smua.v_limit = 1.0
        smu.used.add("a")
        smu.apply_levels({"a": 0.3})
        smu.shutdown()
    assert smu.last_levels == {"a": 0.0}


def test_overload_reading_is_refused_naming_the_channel():
    """The 2600B's overflow reading (9.91E+37) is never passed on as a voltage."""
    from hil.drivers.base import InstrumentError

    cmd = ("smua.measure.count=2 smua.nvbuffer1.clear() smub.measure.count=2 smub.nvbuffer1.clear() "
           "smua.measure.v(smua.nvbuffer1) smub.measure.v(smub.nvbuffer1) "
           "printbuffer(1,2,smua.nvbuffer1.readings,smub.nvbuffer1.readings)")
    with expected_protocol(Keithley2600, [(cmd, block0([0.1, 0.2, 0.3, 9.91e37]))], name="k2600") as smu:
        with pytest.raises(InstrumentError, match=r"channel smub of k2600: overload reading \(\+9\.9E\+37, sample 2\)"):
            smu.read_voltages(["a", "b"], 2)
