"""Helpers of the emulator tests: the end-to-end station and run config, and the emulated clock's speed.

The tests run `hil` in-process (`hilep_testing.hil`) so that the emulator's server threads,
started here, serve the LabCrossbar it opens; every server stops at test end.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
STATION = DATA / "station.yaml"
RUN = DATA / "run.yaml"
#: emulated seconds per real second in the tests (the instruments' own pace is 1)
SPEED = 1000.0
