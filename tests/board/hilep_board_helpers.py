"""Helpers of the board-task tests: shipped configs and stations, fast-slewing copies of them, emulators."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "protocols" / "configs"
STATIONS = REPO / "protocols" / "stations"



def fast_ramp_station(name: str, tmp_path: Path, ramp_v_per_s: float = 1000.0) -> Path:
    """A copy of a shipped station whose sources may slew fast (one ramp step per level): test time only."""
    data = yaml.safe_load((STATIONS / name).read_text())
    data["limits"]["ramp_v_per_s"] = ramp_v_per_s
    out = tmp_path / name
    out.write_text(yaml.safe_dump(data))
    return out


def fast_emulator(station: Path, twin: dict | None, seed: int = 0):
    """An emulator of `station` whose instruments run 1000x their real pace when it has a clock (tests that
    check behaviour, not timing; `test_estimate_vs_emulator` runs it in real time)."""
    import inspect

    from hil.simulators.emulator import Emulator
    from hil.station import load_station

    fast = {"speed": 1000.0} if "speed" in inspect.signature(Emulator).parameters else {}
    return Emulator(load_station(station), twin, seed=seed, **fast)
