"""Keithley 707B switching matrix mainframe (TSP), with break-before-make and closed-channel bookkeeping.

Channels are `<slot><row><column>` as the 707B names crosspoints, e.g. `1A01`
(slot 1, row A, column 1).  `route(channels)` makes exactly these channels closed:
with `channel.connectrule = channel.BREAK_BEFORE_MAKE` set at configure time,
`channel.exclusiveclose` opens every other channel before it closes the new ones.
The driver keeps the set of closed channels, so a route that is already in place
costs nothing, and shutdown (`channel.open("allslots")`) is a single write.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from pymeasure.instruments import Instrument

from hil.drivers.base import SafeInstrument
from hil.drivers.ratings import Rating
from hil.drivers.timing import InstrumentTiming

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: 707B with 7174A low-current matrix cards: 200 V, 1 A switched (7174A card specification, not re-read here)
RATINGS = {"707B": Rating("707B", (200.0,), 200.0, carry_a=1.0, source="7174A matrix card specification")}


@dataclass(frozen=True)
class Keithley707BTiming(InstrumentTiming):
    """707B: no readings; `switch_s` is one route (break before make: open, then close), about 3 ms each (assumed)."""

    switch_s: float = 0.003
    autozero: bool = False

    def estimate_read_s(self, n_samples: int, n_channels: int = 1) -> float:
        raise ValueError("a 707B switches; it takes no readings")

    def route_s(self) -> float:
        """One `route()`: the command and a relay open then close, and the error-queue query."""
        return 2 * self.command_s + 2 * self.switch_s


_CROSSPOINT = re.compile(r"^[1-6][A-H](0[1-9]|1[0-2])$")


def crosspoint_list(value: object, values: object = None) -> str:
    """Validate 707B crosspoints and join them: ["1A01", "1B02"] -> "1A01,1B02"."""
    chans = [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]
    for ch in chans:
        if not _CROSSPOINT.match(str(ch)):
            raise ValueError(f"{ch!r} is not a 707B crosspoint like 1A01 (slot 1-6, row A-H, column 01-12)")
    return ",".join(chans)


class Keithley707B(SafeInstrument, Instrument):
    """Keithley 707B: route a set of crosspoints, break before make."""

    error_query = 'code,msg=errorqueue.next() print(string.format("%d,%s",code,msg))'

    exclusive_close = Instrument.setting(
        'channel.exclusiveclose("%s")',
        """Set the closed channels: open every other one, then close these (list of str, e.g. ["1A01"]).""",
        validator=crosspoint_list,
        values=(),
    )

    def __init__(self, adapter, name: str = "Keithley 707B", **kwargs) -> None:
        kwargs.pop("binary", None)
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        self._init_safe()
        self.closed: frozenset[str] = frozenset()

    def configure(self) -> None:
        """Break-before-make, and every channel open."""
        self.write('channel.connectrule=channel.BREAK_BEFORE_MAKE channel.open("allslots")')
        self.closed = frozenset()
        self.raise_errors("configure")

    def route(self, channels: list[str]) -> None:
        """Make exactly `channels` closed (one write and one error check, none if already so)."""
        target = frozenset(channels)
        if target == self.closed:
            return
        if not target:
            self.open_all()
            return
        self.closed = frozenset()  # unknown until the instrument confirms
        self.exclusive_close = sorted(target)
        self.raise_errors("route")
        self.closed = target

    def open_all(self) -> None:
        self.write('channel.open("allslots")')
        self.closed = frozenset()
        self.raise_errors("open_all")

    def output_off_commands(self) -> list[str]:
        return ['channel.open("allslots")']

    def safe_shutdown(self, max_step: float, step_s: float = 0.0, deadline: float | None = None) -> bool:
        ok = super().safe_shutdown(max_step, step_s, deadline)
        if ok:
            self.closed = frozenset()
        return ok

    def shutdown(self) -> None:
        """Open every channel (write only)."""
        self.safe_shutdown(max_step=1.0)
        super().shutdown()
