"""Keithley 707B switching matrix mainframe (TSP): crosspoints `<slot><row><column>`, e.g. `1A01`.

Per the 707B reference manual: `channel.close("list")` closes channels (adding to those
closed), `channel.open("list" | "allslots" | "slotN")` opens them,
`channel.exclusiveclose("list")` opens every other channel and closes these,
`channel.getclose("allslots")` returns the closed channels separated by `;` (nil
when none), `channel.connectrule` is `channel.BREAK_BEFORE_MAKE` (1),
`channel.MAKE_BEFORE_BREAK` (2) or `channel.OFF` (0).  A malformed crosspoint is
error 1115 ("Parameter error: invalid channel").
"""

from __future__ import annotations

import re
from typing import Any

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
        out = set()
        for item in filter(None, (s.strip() for s in re.split(r"[,;]", arg))):
            if re.fullmatch(r"slot[1-6]", item.lower()):
                out.add(item.lower())
            elif _CROSSPOINT.match(item.upper()):
                out.add(item.upper())
            else:
                raise TspError(1115, f"Parameter error: invalid channel {item}")
        return out

    def get(self, name: str) -> Any:
        consts = {"channel.BREAK_BEFORE_MAKE": 1.0, "channel.MAKE_BEFORE_BREAK": 2.0, "channel.OFF": 0.0}
        if name in consts:
            return consts[name]
        if name == "channel.connectrule":
            return self.connectrule
        if name.startswith("errorqueue."):
            return self.get_common(name)
        return super().get(name)

    def set(self, name: str, value: Any) -> None:
        if name == "channel.connectrule":
            if value not in (0.0, 1.0, 2.0):
                raise TspError(1115, "Parameter error: connectrule")
            self.connectrule = value
            return
        super().set(name, value)

    def call(self, name: str, args: list[Any]) -> Any:
        if name in ("channel.open", "channel.close", "channel.exclusiveclose", "channel.getclose"):
            chans = self._channels(args[0] if args else None)
            if name == "channel.open":
                if "*" in chans:
                    self.closed.clear()
                else:
                    for ch in chans:
                        if ch.startswith("slot"):
                            self.closed = {c for c in self.closed if c[0] != ch[-1]}
                        self.closed.discard(ch)
                return None
            if name == "channel.getclose":
                if "*" in chans:
                    found = sorted(self.closed)
                else:
                    found = sorted(c for c in self.closed if c in chans or f"slot{c[0]}" in chans)
                return ";".join(found) if found else None
            if any(c == "*" or c.startswith("slot") for c in chans):
                raise TspError(1115, "Parameter error: close needs crosspoints")
            if name == "channel.exclusiveclose":
                self.closed = set(chans)
            else:
                self.closed |= chans
            return None
        return super().call(name, args)
