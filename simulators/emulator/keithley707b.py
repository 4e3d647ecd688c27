"""Keithley 707B switching matrix mainframe (TSP): crosspoints `<slot><row><column>`, e.g. `1A01`.

Per the 707B reference manual: a channel list holds crosspoints, ranges (`1A01:1A03`,
and blocks `1A01:1C04`: rows A..C by columns 1..4), `slotN` and `allslots`, separated
by commas.  `channel.close(list)` closes channels (adding to those closed),
`channel.open(list)` opens them, `channel.exclusiveclose(list)` opens every other
channel and closes these, `channel.getclose(list)` returns the closed channels
separated by `;` (nil when none), `channel.reset(list)` opens them;
`channel.connectrule` is `channel.BREAK_BEFORE_MAKE` (1), `channel.MAKE_BEFORE_BREAK`
(2) or `channel.OFF` (0).  A malformed crosspoint is error 1115 ("Parameter error:
invalid channel").  Each operation that moves relays takes their actuation time
(`timing.SWITCH_S`, twice with break-before-make when some open and others close).
"""

from __future__ import annotations

import re
from typing import Any

from hil.simulators.emulator.timing import SWITCH_S
from hil.simulators.emulator.tsp import TspError, TspInstrument

_CROSSPOINT = re.compile(r"^[1-6][A-H](0[1-9]|1[0-2])$")


class Keithley707B(TspInstrument):
    kind = "keithley707b"
    idn = "Keithley Instruments Inc., Model 707B, EMU0001, 1.6.0"
    queue_size = 32

    def reset(self) -> None:
        self.closed: set[str] = set()
        self.connectrule = 1.0

    def outputs_on(self) -> dict[str, bool]:
        return {ch: True for ch in sorted(self.closed)}

    def _channels(self, arg: Any) -> set[str]:
        if not isinstance(arg, str):
            raise TspError(1115, "Parameter error: invalid channel list")
        if arg.lower() == "allslots":
            return {"*"}
        out: set[str] = set()
        for item in filter(None, (s.strip() for s in re.split(r"[,;]", arg))):
            lo, _, hi = item.upper().partition(":")
            if re.fullmatch(r"slot[1-6]", item.lower()):
                out.add(item.lower())
            elif _CROSSPOINT.match(lo) and (not hi or (_CROSSPOINT.match(hi) and hi[0] == lo[0])):
                hi = hi or lo
                rows = range(ord(min(lo[1], hi[1])), ord(max(lo[1], hi[1])) + 1)
                cols = range(min(int(lo[2:]), int(hi[2:])), max(int(lo[2:]), int(hi[2:])) + 1)
                out |= {f"{lo[0]}{chr(r)}{c:02d}" for r in rows for c in cols}
            else:
                raise TspError(1115, f"Parameter error: invalid channel {item}")
        return out

    def _switch(self, closed: set[str]) -> None:
        """Move the relays to `closed`, taking their actuation time."""
        opening, closing = self.closed - closed, closed - self.closed
        if opening or closing:
            steps = 2 if (opening and closing and self.connectrule != 0.0) else 1
            self.work(steps * SWITCH_S["keithley707b"])
        self.closed = closed

    def get(self, name: str) -> Any:
        consts = {"channel.BREAK_BEFORE_MAKE": 1.0, "channel.MAKE_BEFORE_BREAK": 2.0, "channel.OFF": 0.0}
        if name in consts:
            return consts[name]
        if name == "channel.connectrule":
            return self.connectrule
        return super().get(name)

    def set(self, name: str, value: Any) -> None:
        if name == "channel.connectrule":
            if value not in (0.0, 1.0, 2.0):
                raise TspError(1115, "Parameter error: connectrule")
            self.connectrule = value
            return
        super().set(name, value)

    def call(self, name: str, args: list[Any]) -> Any:
        if name in ("channel.open", "channel.close", "channel.exclusiveclose", "channel.getclose", "channel.reset"):
            chans = self._channels(args[0] if args else None)
            if name in ("channel.open", "channel.reset"):
                gone = {c for c in self.closed if "*" in chans or c in chans or f"slot{c[0]}" in chans}
                self._switch(self.closed - gone)
                return None
            if name == "channel.getclose":
                found = sorted(c for c in self.closed if "*" in chans or c in chans or f"slot{c[0]}" in chans)
                return ";".join(found) if found else None
            if any(c == "*" or c.startswith("slot") for c in chans):
                raise TspError(1115, "Parameter error: close needs crosspoints")
            self._switch(set(chans) if name == "channel.exclusiveclose" else self.closed | chans)
            return None
        return super().call(name, args)
