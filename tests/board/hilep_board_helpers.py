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
