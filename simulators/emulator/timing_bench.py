"""How long an N-sample read takes on each emulated instrument: the timing model against the emulator's clock.

For each instrument, one node read N times at 1 PLC (60 Hz, autozero on, the manuals'
defaults), with the commands a user types from the manual, over a pyvisa-py loopback
socket.  `modelled_s` is `timing.py`'s prediction (readings, delays, switching and the
reply's transfer); `emulated_s` is the wall time of the transaction times the clock's
speed, which is chosen so that each read lasts about `target_s` of real time (the
socket round trip and the emulator's own work then count `speed` times: the difference
of the two columns is that overhead, not a model error).

    python -m hil.simulators.emulator.timing_bench          # the table, N = 1, 100, 5000
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hil.simulators.emulator.timing import CHANNEL_DELAY_S, SOURCE_DELAY_S, SWITCH_S, reading_s, transfer_s
from hil.station import Station

NPLC, LINE_HZ = 1.0, 60.0


def _station() -> Station:
    return Station.model_validate({
        "name": "timing",
        "instruments": {name: {"kind": kind, "address": f"TCPIP0::127.0.0.1::{i + 1}::SOCKET"}
                        for i, (name, kind) in enumerate([("board", "conductance_board"), ("k2400", "keithley2400"),
                                                          ("k2450", "keithley2450"), ("k2600", "keithley2600"),
                                                          ("daq", "daq970a"), ("dmm", "daq6510")])},
        "wiring": {"inputs": ["board.0"], "layers": [["k2400", "k2450", "k2600.a", "daq.101", "dmm.101"]]},
        "conductances": {"kind": "board", "instrument": "board"},
        "limits": {"v_abs_max": 1.0, "compliance_a": 1e-4, "cell_power_max_w": 1e-3, "ramp_v_per_s": 10.0,
                   "g_min_s": 1e-6, "g_max_s": 1e-3},
    })


def _per_reading(kind: str) -> float:
    """The model's time of one reading of one node, per instrument (the commands below set it up)."""
    r = reading_s(kind, NPLC, LINE_HZ, True)
    if kind in ("keithley2400", "keithley2450"):
        return SOURCE_DELAY_S + r
    if kind in ("daq970a", "daq6510"):
        return SWITCH_S[kind] + CHANNEL_DELAY_S + r
    return r


def _reads(n: int) -> dict[str, tuple[list[str], str]]:
    """Per instrument: the setup writes and the one query of an N-sample read, from the manuals."""
    chunk = min(n, 2500)  # the 2400's buffer holds 2500 readings
    return {
        "k2400": ([f':SOUR:FUNC CURR;:SOUR:CURR 0;:SENS:FUNC:CONC OFF;:SENS:FUNC "VOLT";:SENS:VOLT:NPLC {NPLC};'
                   f':FORM:ELEM VOLT;:OUTP ON;:TRAC:CLE;:TRAC:POIN {chunk};:TRAC:FEED SENS;'
                   f':TRAC:FEED:CONT NEXT;:TRIG:COUN {chunk};:INIT'], ":TRAC:DATA?"),
        "k2450": ([f':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SENS:VOLT:NPLC {NPLC};:OUTP ON;'
                   f':TRAC:POIN {max(n, 10)};:TRAC:CLE;:COUN {n};:TRAC:TRIG'], f':TRAC:DATA? 1,{n},"defbuffer1",READ'),
        "k2600": ([f"smua.source.func=smua.OUTPUT_DCAMPS smua.source.leveli=0 smua.source.output=1 "
                   f"smua.measure.nplc={NPLC} smua.measure.count={n} smua.nvbuffer1.clear()"],
                  f"smua.measure.v(smua.nvbuffer1) printbuffer(1,{n},smua.nvbuffer1.readings)"),
        "daq": ([f"CONF:VOLT:DC AUTO,(@101);:VOLT:DC:NPLC {NPLC},(@101);:TRIG:COUN {n}"], "READ?"),
        "dmm": ([f':SENS:FUNC "VOLT:DC",(@101);:SENS:VOLT:NPLC {NPLC},(@101);:ROUT:SCAN:CRE (@101);'
                 f':TRAC:POIN {max(n, 10)};:TRAC:CLE;:ROUT:SCAN:COUN:SCAN {n};:INIT'],
                f':TRAC:DATA? 1,{n},"defbuffer1",READ'),
    }


def measure(n: int, target_s: float = 0.5, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per instrument: modelled and emulated seconds of an n-sample read."""
    import pyvisa

    from hil.simulators.emulator import Emulator

    rows = []
    st = _station()
    rm = pyvisa.ResourceManager("@py")
    try:
        for name, (setup, query) in _reads(n).items():
            kind = st.instruments[name].kind
            reps = 2 if (kind == "keithley2400" and n > 2500) else 1
            per_read = n / reps * _per_reading(kind)
            speed = max(1.0, per_read / target_s)
            with Emulator(st, {"sigma": 0.0}, speed=speed) as emu:
                res = rm.open_resource(emu.addresses[name], read_termination="\n", write_termination="\n",
                                       timeout=60_000)
                try:
                    res.query("*OPC?")  # connected and idle
                    elapsed, n_bytes = 0.0, 0
                    for _ in range(reps):
                        for cmd in setup:
                            res.write(cmd)
                        t0 = time.perf_counter()
                        reply = res.query(query)
                        elapsed += time.perf_counter() - t0
                        n_bytes += len(reply) + 1
                finally:
                    res.close()
            modelled = reps * per_read + transfer_s(n_bytes)
            rows.append({"instrument": kind, "n": n, "modelled_s": modelled, "emulated_s": elapsed * speed,
                         "speed": speed})
            if progress:
                progress(f"{kind} N={n}: modelled {modelled:.4g} s, emulated {elapsed * speed:.4g} s")
    finally:
        rm.close()
    return rows


def bench(seconds: float = 3.0) -> dict[str, float]:
    """`hil bench` figures: emulated / modelled time of a 100-sample read per instrument."""
    return {f"emulator_timing_{r['instrument']}_n100_emulated_over_modelled": r["emulated_s"] / r["modelled_s"]
            for r in measure(100, target_s=min(0.5, seconds / 10))}


if __name__ == "__main__":
    print(f"{'instrument':14s} {'N':>5s} {'modelled s':>12s} {'emulated s':>12s} {'ratio':>7s} {'speed':>9s}")
    for n in (1, 100, 5000):
        for r in measure(n):
            print(f"{r['instrument']:14s} {n:5d} {r['modelled_s']:12.5g} {r['emulated_s']:12.5g} "
                  f"{r['emulated_s'] / r['modelled_s']:7.3f} {r['speed']:9.4g}")
