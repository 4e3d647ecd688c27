"""Helpers of the board-task tests: shipped configs and stations, in-process `hil`, the run store."""

from __future__ import annotations

from pathlib import Path

import yaml

from hil.store import Store

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "protocols" / "configs"
STATIONS = REPO / "protocols" / "stations"


def hil(*args: str) -> int:
    """Run the `hil` CLI in this process (so the emulator's threads serve it); its exit status."""
    from hil.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def runs(workspace: Path) -> list[dict]:
    with Store(workspace) as store:
        return [{**r, "batches": store.batches(r["id"]), "epochs": store.epochs(r["id"])} for r in store.runs()]


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
