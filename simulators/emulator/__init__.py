"""The SCPI emulator: a station's instruments on loopback sockets, backed by one `TwinCrossbar`.

Each instrument model implements its own command set from its manual and keeps its
own state; nothing here imports `hil.drivers`, so the drivers are checked against
the instruments' behaviour, not against an echo of themselves.
"""

from hil.simulators.emulator.core import Emulator
from hil.simulators.emulator.faults import Fault

__all__ = ["Emulator", "Fault"]
