"""Helpers every test folder uses: the `hil` CLI in this process, a run store's contents, polling."""

from __future__ import annotations

import time
from pathlib import Path

from hil.store import Store


def hil(*args: str) -> int:
    """Run the `hil` CLI in this process (so an emulator's threads here serve it); its exit status."""
    from hil.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def runs(workspace: Path) -> list[dict]:
    """Every run of a workspace with its batch and epoch records."""
    with Store(workspace) as store:
        return [{**r, "batches": store.batches(r["id"]), "epochs": store.epochs(r["id"])} for r in store.runs()]


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    """Poll `predicate` until it holds or `timeout_s` passes; whether it held."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
