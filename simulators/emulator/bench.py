"""`hil bench` figures of the emulator: query rate and read latency over loopback, Nagle on and off.

Registered in the `hil.benches` entry-point group: `bench(seconds) -> dict`.  One
emulated DAQ970A is read through pyvisa-py, as `LabCrossbar` reads it (a write of
`TRIG:COUN 1` then a `READ?` query: the write-write-read pattern that Nagle's
algorithm and delayed ACKs turn into a ~40-90 ms stall), once on a session with
`TCP_NODELAY` and once on a session without; both in the same run.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from hil.station import Station


def _station() -> Station:
    return Station.model_validate({
        "name": "bench",
        "instruments": {
            "board": {"kind": "conductance_board", "address": "TCPIP0::127.0.0.1::1::SOCKET"},
            "daq": {"kind": "daq970a", "address": "TCPIP0::127.0.0.1::2::SOCKET"},
        },
        "wiring": {"inputs": ["board.0:1"], "layers": [["daq.101:102"], ["daq.103"]]},
        "conductances": {"kind": "board", "instrument": "board"},
        "limits": {"v_abs_max": 1.0, "compliance_a": 1e-4, "cell_power_max_w": 1e-3, "ramp_v_per_s": 10.0,
                   "g_min_s": 1e-6, "g_max_s": 1e-3},
    })


def _session(rm: Any, address: str, nodelay: bool) -> Any:
    res = rm.open_resource(address, read_termination="\n", write_termination="\n", timeout=2000)
    sock = res.visalib.sessions[res.session].interface
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if nodelay else 0)
    return res


def _rate(fn: Any, seconds: float, max_n: int = 100_000) -> tuple[float, float]:
    """(operations per second, mean seconds per operation) of fn over about `seconds`."""
    fn()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds and n < max_n:
        fn()
        n += 1
    return n / elapsed, elapsed / max(n, 1)


def bench(seconds: float = 3.0) -> dict[str, float]:
    """Per label (nodelay: TCP_NODELAY on, nagle: off), in the same run and alternated twice (best kept):

    - `queries_per_s`: lone `*IDN?` queries (one write, one read: Nagle has nothing to hold back);
    - `reads_per_s` and `read_latency_ms`: LabCrossbar's read, `TRIG:COUN 1` then `READ?` (write, write, read);
    - the ratios nodelay / nagle of both rates, and nagle / nodelay of the read latency.
    """
    import pyvisa

    from hil.simulators.emulator import Emulator

    best: dict[str, float] = {}
    span = max(0.1, seconds / 8)
    with Emulator(_station(), {"sigma": 0.0}, speed=1e6) as emu:  # the sockets, not the instrument's scan time
        emu.model("daq").handle(b"CONF:VOLT:DC 1,(@101:103)")
        rm = pyvisa.ResourceManager("@py")
        try:
            for _ in range(2):
                for label, nodelay in (("nodelay", True), ("nagle", False)):
                    res = _session(rm, emu.addresses["daq"], nodelay)
                    try:
                        qps, _ = _rate(lambda r=res: r.query("*IDN?"), span)

                        def read(r=res) -> None:
                            r.write("TRIG:COUN 1")
                            r.query("READ?")

                        rps, latency = _rate(read, span, max_n=2000)
                    finally:
                        res.close()
                    rates = {f"emulator_{label}_queries_per_s": qps, f"emulator_{label}_reads_per_s": rps}
                    for key, value in rates.items():
                        best[key] = max(best.get(key, 0.0), value)
                    key = f"emulator_{label}_read_latency_ms"
                    best[key] = min(best.get(key, float("inf")), latency * 1e3)
        finally:
            rm.close()
    out = dict(best)
    out["emulator_nodelay_over_nagle_queries_per_s"] = best["emulator_nodelay_queries_per_s"] / max(
        best["emulator_nagle_queries_per_s"], 1e-9)
    out["emulator_nodelay_over_nagle_reads_per_s"] = best["emulator_nodelay_reads_per_s"] / max(
        best["emulator_nagle_reads_per_s"], 1e-9)
    out["emulator_nagle_over_nodelay_read_latency"] = best["emulator_nagle_read_latency_ms"] / max(
        best["emulator_nodelay_read_latency_ms"], 1e-9)
    return out
