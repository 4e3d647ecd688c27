"""Shared fixtures: where the full datasets are, and a helper to run the real `hil` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests of Ctrl-C expect what a terminal gives; a test run started in the background by a shell
# inherits SIGINT ignored (and so would every process it starts): give it the terminal's handler.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
SHARED_DATA = REPO.parent / "shared" / "datasets"


def full_data_root() -> Path | None:
    """The data root with the full MNIST files, from HIL_DATA_DIR or ../shared/datasets."""
    for root in (os.environ.get("HIL_DATA_DIR"), SHARED_DATA):
        if root and (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return Path(root)
    return None


needs_full_data = pytest.mark.skipif(
    full_data_root() is None, reason="full MNIST not found (set HIL_DATA_DIR or provide ../shared/datasets)"
)


def run_hil(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run the installed CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "hil", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})},
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--hardware", metavar="STATION.yaml", default=None,
                     help="run tests/hardware against the real board described by this station file")


@pytest.fixture
def hardware_station(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.getoption("--hardware"))
