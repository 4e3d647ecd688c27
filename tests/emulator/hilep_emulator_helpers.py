"""Helpers of the emulator tests: the e2e station and run config, and runs of `hil train` in this process.

`hil train` runs in-process (`hil.cli.main`) so that the emulator's server threads,
started here, serve the LabCrossbar it opens; every server stops at test end.
"""

from __future__ import annotations

import time
from pathlib import Path

from hil.store import Store

DATA = Path(__file__).resolve().parent / "data"
STATION = DATA / "station.yaml"
RUN = DATA / "run.yaml"
#: emulated seconds per real second in the tests (the instruments' own pace is 1)
SPEED = 1000.0


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def hil(*args: str) -> int:
    """Run the `hil` CLI in this process; its exit status (0 when it returns)."""
    from hil.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def runs(workspace: Path) -> list[dict]:
    with Store(workspace) as store:
        return [{**r, "batches": store.batches(r["id"]), "epochs": store.epochs(r["id"])} for r in store.runs()]
