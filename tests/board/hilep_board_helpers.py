"""Helpers of the board-task tests: shipped configs and stations, fast-slewing copies of them, emulators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def emulated_station(config: Path, station_name: str, tmp_path: Path) -> Iterator[tuple[object, Path]]:
    """The fast-slewing copy of a shipped station served by `fast_emulator` with `config`'s twin and seed:
    (the emulator, the loopback station file to train on)."""
    from hil.config import load_config

    cfg, _ = load_config(str(config))
    with fast_emulator(fast_ramp_station(station_name, tmp_path), cfg.crossbar, seed=cfg.seed) as emu:
        yield emu, emu.write_station(tmp_path / "emulated.yaml")
