"""Faults a test scripts on an emulated instrument, fired by the commands it receives.

    emu.inject("daq", "delay", on="READ?", after=3, delay_s=2.5)

`on` is a regular expression searched (case-insensitive) in each program message
the instrument receives; `after` matching messages go through untouched, then the
fault fires on the next `times` matching messages.  Kinds:

- `drop`: the connection closes instead of answering (the message is lost);
- `delay`: the reply goes out `delay_s` later, and the messages after it on that connection
  wait for it (a slow instrument still answers in order); past the client's timeout the
  client gives up, and a reply that comes after the client reconnected is never seen;
- `hang`: the instrument reads the message and answers nothing (a hung or dead instrument
  whose link is still up; with `times` large, every later message, on any connection);
- `garble`: the reply's bytes are replaced by unreadable ones (same length, terminator kept);
- `truncate`: only the first half of the reply is sent, then the terminator;
- `error`: the message is executed, then `error` (code, message) is put in the queue;
- `trip`: a compliance trip just before the message runs (outputs off, an error queued);
- `reboot`: the instrument restarts (state back to power-on, error queue cleared,
  PON set), every connection closes, and connects are refused for `boot_s`;
- `unplug`: the link goes down for `down_s` (the message is lost, every connection closes,
  connects are refused) and comes back; the instrument keeps its state, but what it does
  when its host is gone (the board's watchdog) it does.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["drop", "delay", "hang", "garble", "truncate", "error", "trip", "reboot", "unplug"]
KINDS = ("drop", "delay", "hang", "garble", "truncate", "error", "trip", "reboot", "unplug")


@dataclass
class Fault:
    instrument: str
    kind: FaultKind
    on: str = ""
    after: int = 0
    times: int = 1
    delay_s: float = 3.0
    boot_s: float = 0.3
    down_s: float = 2.5
    error: tuple[int, str] = (-310, "System error; injected")
    seen: int = 0
    fired: int = 0
    log: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        self._rx = re.compile(self.on, re.IGNORECASE) if self.on else None

    def matches(self, message: bytes) -> bool:
        """Count this message and say whether the fault fires on it."""
        if self.fired >= self.times:
            return False
        text = message[:200].decode("latin-1")
        if self._rx is not None and not self._rx.search(text):
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        self.fired += 1
        self.log.append((time.monotonic(), text[:80]))
        return True

    @property
    def done(self) -> bool:
        return self.fired >= self.times


class FaultPlan:
    """Every fault scripted on one emulator, with a lock (servers run one thread per connection)."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def firing(self, instrument: str, message: bytes) -> list[Fault]:
        with self.lock:
            return [f for f in self.faults if f.instrument == instrument and f.matches(message)]


def garble(reply: bytes) -> bytes:
    """Unreadable bytes of the same length, the terminator kept."""
    body = reply[:-1] if reply.endswith(b"\n") else reply
    junk = bytes(0x80 | (b & 0x3F) if b not in (10,) else 0x7F for b in body) or b"\xff"
    return junk.replace(b"#", b"\xa3") + b"\n"


def truncate(reply: bytes) -> bytes:
    body = reply[:-1] if reply.endswith(b"\n") else reply
    return body[: max(1, len(body) // 2)] + b"\n"
