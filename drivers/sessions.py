"""Instrument sessions and their recovery: open (TCP_NODELAY), identify, retry with back-off, detect restarts.

`SessionsMixin` is the part of `LabCrossbar` that owns the VISA links: every instrument
operation goes through `_call`, which reopens a dropped session with exponential
back-off and retries the (idempotent) operation; after a reconnect `_check_restart`
makes sure the instrument did not restart and lose its state.  How a failure is classified
and how the stop is worded to the user (a dead link, a restart, an error the instrument
reported) is `stops`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from hil.drivers.base import QueuedError, brief, reason
from hil.drivers.ratings import check_ratings, model_ratings
from hil.drivers.stops import (
    InstrumentReported,
    InstrumentRestarted,
    LinkError,
    is_dropped,
    is_retryable,
    is_timeout,
    link_error,
    reported_error,
)
from hil.errors import ConfigError
from hil.station import BoardProgramming, InstrumentSpec

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

T = TypeVar("T")


def driver_classes() -> dict[str, type]:
    """Instrument kind (as a station names it) -> driver class."""
    from hil.drivers.hilep_conductance_board import ConductanceBoard
    from hil.drivers.keithley_707b import Keithley707B
    from hil.drivers.keithley_2400 import Keithley2400
    from hil.drivers.keithley_2450 import Keithley2450
    from hil.drivers.keithley_2600 import Keithley2600
    from hil.drivers.keithley_daq6510 import KeithleyDAQ6510
    from hil.drivers.keysight_daq970a import DAQ970A, Agilent34970A

    return {
        "keithley2400": Keithley2400,
        "keithley2450": Keithley2450,
        "keithley2600": Keithley2600,
        "daq970a": DAQ970A,
        "agilent34970a": Agilent34970A,
        "daq6510": KeithleyDAQ6510,
        "keithley707b": Keithley707B,
        "conductance_board": ConductanceBoard,
    }


#: a piece of `*IDN?` that each kind must answer with
IDN_HINTS = {
    "keithley2400": "24",
    "keithley2450": "2450",
    "keithley2600": "26",
    "daq970a": "DAQ970",
    "agilent34970a": "34970",
    "daq6510": "DAQ6510",
    "keithley707b": "707",
    "conductance_board": "GBOARD",
}


def make_driver(name: str, spec: InstrumentSpec, adapter: Any, classes: dict[str, type] | None = None) -> Any:
    """The driver of one instrument on an open adapter, with the station's timeouts and line frequency."""
    inst = (classes or driver_classes())[spec.kind](adapter, name=name, binary=spec.transfer == "binary")
    inst.cleanup_timeout_s = spec.cleanup_timeout_s
    inst.base_timeout_s = spec.timeout_s
    if hasattr(inst, "timing"):  # the link as the station gives it (serial baud rate), and the mains frequency
        from hil.drivers.timing import timing_for

        station_model = timing_for(spec.kind, spec)
        inst.timing = inst.timing.with_(link_bytes_per_s=station_model.link_bytes_per_s,
                                        **({"line_hz": float(spec.line_hz)} if spec.line_hz else {}))
    return inst


def open_session(name: str, spec: InstrumentSpec, source: str):
    """A pymeasure VISAAdapter for one instrument, TCP_NODELAY set on sockets; errors name the address."""
    from pymeasure.adapters import VISAAdapter

    kwargs: dict[str, Any] = {
        "timeout": int(spec.timeout_s * 1000),
        "open_timeout": int(spec.timeout_s * 1000),
        "read_termination": "\n",
        "write_termination": "\n",
    }
    if spec.baud_rate:
        kwargs["baud_rate"] = spec.baud_rate
    library = spec.visa_library
    if library.endswith("@sim") and len(library) > 4:  # a pyvisa-sim file: relative to the station file
        sim = Path(library[:-4])
        if not sim.is_absolute() and not sim.exists() and (Path(source).parent / sim).exists():
            library = f"{Path(source).parent / sim}@sim"
    try:
        adapter = VISAAdapter(spec.address, visa_library=library, **kwargs)
    except Exception as exc:
        detail = f"cannot open {spec.address!r} ({reason(exc)})"
        raise ConfigError(f"{source}: instruments.{name}.address: {detail}", detail=detail) from None
    if "SOCKET" in spec.address.upper():
        refused = socket_error(adapter.connection)
        if refused:
            _close_adapter_only(adapter)
            detail = f"cannot connect to {spec.address!r} ({os.strerror(refused)})"
            raise ConfigError(f"{source}: instruments.{name}.address: {detail}", detail=detail)
        set_nodelay(adapter.connection)
    return adapter


def socket_error(resource: Any) -> int:
    """The pending error of a pyvisa-py socket session (pyvisa-py reports a refused connect as opened)."""
    import socket

    try:
        sock = resource.visalib.sessions[resource.session].interface
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    except Exception:  # not a pyvisa-py socket session
        return 0


def _close_adapter_only(adapter: Any) -> None:
    try:
        adapter.close()
    except Exception as exc:
        log.debug("close failed: %s", exc)


def set_nodelay(resource: Any) -> bool:
    """Switch Nagle off on a TCP socket session (pyvisa-py leaves it on: ~90 ms per query).

    pyvisa-py 0.8 does not route `VI_ATTR_TCPIP_NODELAY` to its socket sessions, so the
    option is set on the session's socket itself and read back.
    """
    import socket

    try:
        from pyvisa import constants

        resource.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, constants.VI_TRUE)
    except Exception as exc:
        log.debug("VI_ATTR_TCPIP_NODELAY refused (%s); setting it on the socket", exc)
    try:
        sock = resource.visalib.sessions[resource.session].interface
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except Exception as exc:  # not a pyvisa-py socket (pyvisa-sim, NI-VISA)
        log.debug("TCP_NODELAY not set on %s: %s", resource, exc)
        return False


def _owed(inst: Any, exc: BaseException) -> None:
    """Count a query that timed out: its reply may still come, and `resync` reads past it."""
    if is_timeout(exc) and hasattr(inst, "unread_replies"):
        inst.unread_replies += 1


class NotReconnected(ConnectionError):
    """The session could not be replaced (no connection, or the restart check got no answer); says why."""


def _close_adapter(inst: Any) -> None:
    try:
        inst.adapter.close()
    except Exception as exc:
        log.debug("%s: close failed: %s", getattr(inst, "name", inst), exc)


class SessionsMixin:
    """Opening, identifying and recovering the sessions of a `LabCrossbar` (which holds `station`, `instruments`)."""

    station: Any
    source: str
    config: Any
    instruments: dict[str, Any]
    idn: dict[str, str]
    _esr_ok: dict[str, bool]
    _held: dict[str, list[np.ndarray]]

    def _open_all(self) -> dict[str, Any]:
        classes = driver_classes()
        opened: dict[str, Any] = {}
        try:
            for name, spec in self.station.instruments.items():
                adapter = open_session(name, spec, self.source)
                opened[name] = make_driver(name, spec, adapter, classes)
        except BaseException:
            for inst in opened.values():
                _close_adapter(inst)
            raise
        return opened

    def _identify_all(self) -> None:
        for name, inst in self.instruments.items():
            spec = self.station.instruments[name]
            try:
                idn = inst.identify()
            except Exception as exc:
                raise ConfigError(
                    f"{self.source}: instruments.{name}.address: no answer to *IDN? from {spec.address!r} "
                    f"({reason(exc)})"
                ) from None
            hint = IDN_HINTS[spec.kind]
            if hint.upper() not in idn.upper():
                raise ConfigError(
                    f"{self.source}: instruments.{name}.kind: {spec.kind}, but {spec.address!r} answers {idn!r}"
                )
            self.idn[name] = idn
            self._esr_ok[name] = self._clear_power_on(name, inst)
        check_ratings(self.station, self.source, model_ratings(self.station, self.idn, self.source))

    def _call(self, name: str, fn: Callable[[], T]) -> T:
        """Run one instrument operation; after a timeout or a lost link, a fresh session (back-off) and a retry.

        Not `clear()`: on a TCPIP SOCKET pyvisa-py's `clear()`/`flush()` drop only the bytes already
        received and send nothing, so a reply still being worked on (a long scan) would answer the next
        query; a new connection starts empty, and `resync` reads a link that keeps bytes back in step.
        Retries that run out raise `LinkError` (one line: instrument, address, what it did not answer).
        """
        tries = self.station.instruments[name].reconnect_tries if name in self.station.instruments else 0
        delay = 0.2
        unusable: str | None = None  # why there is no working session now
        first: tuple[str, BaseException] | None = None
        for attempt in range(tries + 1):
            try:
                if unusable is not None:
                    raise NotReconnected(unusable)
                return fn()
            except QueuedError as exc:  # the instrument answers, and says what is wrong: no retry
                raise self._reported(exc) from None
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                _owed(self.instruments[name], exc)
                if first is None:
                    first = (getattr(self.instruments[name], "last_command", ""), exc)
                if attempt == tries:
                    raise self._link_error(name, first, exc, attempt) from None
                log.warning("%s: %s (%s); reconnecting in %.1f s and retrying", name,
                            "session dropped" if is_dropped(exc) else "no usable reply", reason(exc), delay)
                time.sleep(delay)
                delay *= 2
                unusable = self._reopen(name)
        raise AssertionError("unreachable")

    def _unretried(self, names: list[str], fn: Callable[[], T]) -> T:
        """Run an operation that must not be retried (pulses: a retry would pulse twice) on `names`; a failure
        stops the run in one line like `_call`'s.  A link failure gets a fresh session, whose error queue says
        why when the instrument put it there (a TSP error stops a script before its print: no reply)."""
        try:
            return fn()
        except QueuedError as exc:
            raise self._reported(exc) from None
        except Exception as exc:
            if not is_retryable(exc):
                raise
            name = max(names, key=lambda n: getattr(self.instruments[n], "sent_at", 0.0))  # the one it waited on
            inst = self.instruments[name]
            command = inst.last_command
            _owed(inst, exc)
            errors: list[tuple[int, str]] = []
            if self._reopen(name) is None:
                try:
                    errors = inst.check_errors()
                except Exception as again:
                    log.debug("%s: no error queue after reconnecting: %s", name, reason(again))
            if errors:
                raise self._reported(QueuedError(name, *errors[0], command, "", errors[1:])) from None
            raise self._link_error(name, (command, exc), exc, 0) from None

    def _link_error(self, name: str, first: tuple[str, BaseException], last: BaseException,
                    reconnects: int) -> LinkError:
        """The one line a user gets when an instrument stopped answering (`stops.link_error`)."""
        return link_error(self._where(name), *first, last, reconnects)

    def _reported(self, exc: QueuedError) -> InstrumentReported:
        """The one line a user gets when an instrument reported an error in its queue (`stops.reported_error`)."""
        outputs = getattr(self.instruments.get(exc.instrument), "has_outputs", True)
        return reported_error(self._where(exc.instrument), exc, self.station.limits.compliance_a, self.source, outputs)

    def _where(self, name: str) -> str:
        """`STATION: instruments.NAME (KIND at ADDRESS)`, how an error names an instrument."""
        spec = self.station.instruments.get(name)
        if spec is None:
            return name
        fields = [f.strip() for f in self.idn.get(name, "").split(",")]
        model = fields[1].upper().removeprefix("MODEL").strip() if len(fields) > 1 else ""
        model = f" {model}" if model and model.lower() not in spec.kind.lower() else ""  # where the kind hides it
        return f"{self.source}: instruments.{name} ({spec.kind}{model} at {spec.address})"

    def _reopen(self, name: str) -> str | None:
        """A fresh session (a late reply to the old one is never read); None when it works, else why not.

        Raises InstrumentRestarted if the instrument restarted.
        """
        inst = self.instruments[name]
        spec = self.station.instruments[name]
        _close_adapter(inst)
        try:
            inst.adapter = open_session(name, spec, self.source)
        except ConfigError as exc:
            log.warning("%s: reconnect failed: %s", name, exc)
            return exc.detail
        if "SOCKET" in spec.address.upper():  # a new TCP connection: nothing of the old one comes on it
            inst.unread_replies = 0
        try:
            if self.idn.get(name):
                inst.resync(self.idn[name])
            self._check_restart(name)
        except InstrumentRestarted:
            raise
        except Exception as exc:  # the fresh session failed too: the next attempt reopens again
            _owed(inst, exc)
            log.warning("%s: reconnected, but the restart check failed: %s", name, reason(exc))
            return f"reconnected, but no answer to the restart check: {brief(exc)}"
        return None

    def _clear_power_on(self, name: str, inst: Any) -> bool:
        """Read (and so clear) `*ESR?` at open; True when the instrument answers it with a number."""
        if self.station.instruments[name].kind == "conductance_board" or "SOCKET" not in \
                self.station.instruments[name].address.upper():
            return False
        spec = self.station.instruments[name]
        try:
            with inst.short_timeout(spec.cleanup_timeout_s):
                int(inst.ask("*ESR?").strip())
            return True
        except Exception as exc:
            if not is_timeout(exc):
                log.debug("%s: no *ESR? (%s); restarts are not detected by its power-on bit", name, reason(exc))
                return False
        # a reply that comes late would answer the next query: that session is not used again
        log.warning("%s: no *ESR? reply within %g s; restarts are not detected by its power-on bit", name,
                    spec.cleanup_timeout_s)
        _close_adapter(inst)
        inst.adapter = open_session(name, spec, self.source)
        return False

    def _check_restart(self, name: str) -> None:
        """After a reconnect: did the instrument restart (and lose its state)?  Raises InstrumentError if so.

        A board must still hold the DAC levels and the blocks written to it (its watchdog keeps the
        blocks but not the levels); an IEEE 488.2 instrument must not show the power-on bit (PON, 128)
        of `*ESR?`, which was cleared at open.
        """
        inst = self.instruments[name]
        prog = self.station.conductances
        lost = False
        if isinstance(prog, BoardProgramming) and name == prog.instrument:
            for param, candidates in self._held.items():
                blk = prog.blocks.get(param, param)
                if blk in getattr(inst, "blocks", {}):
                    got = inst.get_block(blk)
                    tol = [self.config.verify_tolerance * np.maximum(np.abs(h), self.station.limits.g_min_s)
                           for h in candidates]
                    lost = lost or not any(np.all(np.abs(got - h) <= t) for h, t in zip(candidates, tol))
        elif self._esr_ok.get(name):
            lost = bool(int(inst.ask("*ESR?").strip()) & 128)
        if lost:
            raise InstrumentRestarted(f"{self._where(name)}: restarted while in use (its state is lost); stopping. "
                                      "Check it, then resume the run")
        if hasattr(inst, "levels_lost") and inst.levels_lost():
            raise InstrumentRestarted(f"{self._where(name)}: its DAC levels are not those sent (a write lost with "
                                      "the link, or its watchdog: 0 V and outputs off after the link was lost for "
                                      "over 2 s); stopping. Check it, then resume the run")

    def _close_sessions(self) -> None:
        for inst in self.instruments.values():
            _close_adapter(inst)
