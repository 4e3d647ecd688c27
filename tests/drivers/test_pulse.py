"""Pulse programming of memristive cells: the exact SMU and matrix commands of read-verify loops."""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.adapters import ProtocolAdapter

from hil.drivers.keithley_707b import Keithley707B
from hil.drivers.keithley_2600 import Keithley2600
from hil.drivers.limits import Guard
from hil.drivers.pulse import PulseProgrammer
from hil.station import Limits, PulseProgramming

ERRQ = 'code,msg=errorqueue.next() print(string.format("%d,%s",code,msg))'
NOERR = (ERRQ, "0,Queue Is Empty")
READ = "smub.source.levelv=0.1 print(smub.measure.i()) smub.source.levelv=0"
LIMITS = Limits(v_abs_max=1.0, compliance_a=1e-3, cell_power_max_w=1e-3, ramp_v_per_s=10.0, g_min_s=1e-6,
                g_max_s=1e-3, pulse_v_abs_max=2.0)
SPEC = PulseProgramming(smu="smu.b", matrix="mtx", columns=[[1, 2], [5], [9]], v_set_start=0.5,
                        v_reset_start=0.6, v_step=0.05, tolerance=0.05, max_pulses=3)


def programmer(smu_pairs, mtx_pairs, limits=LIMITS, spec=SPEC):
    smu_ad, mtx_ad = ProtocolAdapter(smu_pairs), ProtocolAdapter(mtx_pairs)
    prog = PulseProgrammer(spec, Keithley2600(smu_ad), "b", Keithley707B(mtx_ad), Guard(limits))
    return prog, smu_ad, mtx_ad


def done(*adapters):
    for ad in adapters:
        assert ad._index == len(ad.comm_pairs), ad.comm_pairs[ad._index:]


def test_cell_converges_with_incremental_set_pulses():
    smu = [(READ, "5e-06"),  # 50 uS
           ("smub.source.levelv=0.5 delay(0.001) smub.source.levelv=0", None), (READ, "8e-06"),
           ("smub.source.levelv=0.55 delay(0.001) smub.source.levelv=0", None), (READ, "9.9e-06"), NOERR]
    mtx = [('channel.exclusiveclose("1A01,1B05")', None), NOERR, ('channel.open("allslots")', None), NOERR]
    prog, smu_ad, mtx_ad = programmer(smu, mtx)
    assert prog.crosspoints(1, 1, 0) == ["1A02", "1B05"]
    report = prog.program_block(1, np.array([[1e-4]]))  # cell (0, 0) of G1: column 1 to column 5
    assert report.failed == [] and report.pulses == 2
    assert report.achieved[0, 0] == pytest.approx(9.9e-5)
    done(smu_ad, mtx_ad)


def test_reset_pulses_are_negative_and_the_cap_reports_failures():
    smu = [(READ, "5e-05"),  # 500 uS, target 100 uS: RESET
           ("smub.source.levelv=-0.6 delay(0.001) smub.source.levelv=0", None), (READ, "4.5e-05"),
           ("smub.source.levelv=-0.65 delay(0.001) smub.source.levelv=0", None), (READ, "4.2e-05"),
           ("smub.source.levelv=-0.7 delay(0.001) smub.source.levelv=0", None), (READ, "4e-05"), NOERR]
    mtx = [('channel.exclusiveclose("1A05,1B09")', None), NOERR, ('channel.open("allslots")', None), NOERR]
    prog, smu_ad, mtx_ad = programmer(smu, mtx)
    report = prog.program_block(2, np.array([[1e-4]]))
    assert report.failed == [(0, 0)] and report.pulses == 3  # max_pulses reached
    done(smu_ad, mtx_ad)


def test_over_limit_pulse_is_never_sent():
    tight = LIMITS.model_copy(update={"cell_power_max_w": 1e-4})  # 0.55 V on 300 uS = 91 uW ok; 0.6 V: 108 uW
    spec = SPEC.model_copy(update={"v_set_start": 0.55, "max_pulses": 10})
    smu = [(READ, "2e-05"),  # 200 uS, target 300 uS
           ("smub.source.levelv=0.55 delay(0.001) smub.source.levelv=0", None), (READ, "2.5e-05"), NOERR]
    mtx = [('channel.exclusiveclose("1A01,1B05")', None), NOERR, ('channel.open("allslots")', None), NOERR]
    prog, smu_ad, mtx_ad = programmer(smu, mtx, tight, spec)
    report = prog.program_block(1, np.array([[3e-4]]))
    assert report.failed == [(0, 0)] and report.pulses == 1
    done(smu_ad, mtx_ad)
