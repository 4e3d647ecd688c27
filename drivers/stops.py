"""Why a run stops on an instrument, and the one line its user gets.

Three ways, each the user's to check (a `UserError`: one line, exit 2, no traceback; the run
stops at 0 V and off and resumes with `hil train --resume`): an instrument that stopped
answering through every retry (`LinkError`), one that restarted and lost its state
(`InstrumentRestarted`), and one that answers but put an error in its own queue: a command or
a value it refused, or a trip (`InstrumentReported`).  `LabCrossbar` (sessions) decides when;
this module classifies a failure (worth a fresh session and a retry, or not) and words the
stop: station, instrument, address, the command, what the instrument said, what to check.
"""

from __future__ import annotations

import re

from hil.drivers.base import InstrumentError, QueuedError, ReplyError, brief, reason
from hil.errors import UserError


class InstrumentRestarted(InstrumentError, UserError):
    """An instrument came back from a restart (power cycle, reboot, a board's watchdog) and lost what it was
    told: one line, exit 2; the run stops, resumable."""


class LinkError(InstrumentError, UserError):
    """An instrument that stopped answering usably through every retry: the user's to check (power, cable,
    address); one line, exit 2; the run stops, resumable."""


class InstrumentReported(InstrumentError, UserError):
    """An error the instrument reported in its queue (a refused command or value, a compliance trip): the
    user's to check, in the instrument's own words; one line, exit 2; the run stops, resumable."""


def is_retryable(exc: BaseException) -> bool:
    """Worth a fresh session and one more try: a dropped link, a timeout, an unreadable reply.

    Every operation LabCrossbar retries is idempotent (absolute levels, whole blocks, reads).
    """
    return isinstance(exc, (ReplyError, UnicodeDecodeError)) or is_dropped(exc) or is_timeout(exc)


def is_timeout(exc: BaseException) -> bool:
    """A VISA timeout: the reply may still come, late, on that session."""
    try:
        from pyvisa import constants, errors

        return isinstance(exc, errors.VisaIOError) and exc.error_code == constants.StatusCode.error_timeout
    except ImportError:  # pragma: no cover
        return False


def is_dropped(exc: BaseException) -> bool:
    """A session that went away (not a timeout, not an instrument error)."""
    if isinstance(exc, (InstrumentError, TimeoutError)):
        return False
    if isinstance(exc, (ConnectionError, BrokenPipeError)):
        return True
    try:
        from pyvisa import constants, errors

        if isinstance(exc, errors.VisaIOError):
            return exc.error_code in (constants.StatusCode.error_connection_lost, constants.StatusCode.error_io)
    except ImportError:  # pragma: no cover
        pass
    return False


def link_error(where: str, command: str, exc: BaseException, last: BaseException, reconnects: int) -> LinkError:
    """The one line a user gets when an instrument stopped answering: which, where, what, what to check.

    `command` and `exc` are what failed first, `last` what failed at the last of `reconnects` retries.
    """
    cmd = f" {command[:60]!r}" if command else ""
    if is_dropped(exc):
        what = f"the connection dropped at{cmd}" if cmd else "the connection dropped"
    elif isinstance(exc, (ReplyError, UnicodeDecodeError)):
        what = f"no readable reply to{cmd} ({reason(exc)})" if cmd else f"no readable reply ({reason(exc)})"
    else:
        what = f"no reply to{cmd} within the timeout" if cmd else "no reply within the timeout"
    then = f", nor after {reconnects} reconnect{'s' if reconnects != 1 else ''} (last: {brief(last)})" \
        if reconnects else ""
    return LinkError(f"{where}: {what}{then}; check that it is on and answers at that address "
                     "(power, cable or LAN, the address), then resume the run")


#: an error-queue text that says a source protected itself (compliance, a current limit, an overload, a trip):
#: the board's 310 "DAC current limit", the 2450's 5074 "Output tripped", the 2600's 5062 "SMU overload"
TRIP = re.compile(r"complian|trip|limit exceeded|current limit|over ?current|overload", re.IGNORECASE)


def reported_error(where: str, exc: QueuedError, compliance_a: float, source: str,
                   has_outputs: bool = True) -> InstrumentReported:
    """The one line a user gets when an instrument reported an error: its code and text, the command, what to
    check.  A trip of a source (the text says so) points at the limit, the wiring and the device under test;
    a command error (-100..-199, SCPI) at the instrument's model, language and firmware; any other at the
    values sent."""
    more = "; then " + "; ".join(f'{c}, "{m}"' for c, m in exc.rest[:3]) if exc.rest else ""
    said = f'{where}: reported {exc.code}, "{exc.message}"{more} after {exc.sent}'
    if has_outputs and (TRIP.search(exc.message) or any(TRIP.search(m) for _, m in exc.rest)):
        check = (f"it tripped and switched its output off: check the limit (compliance_a = {compliance_a:g} A in "
                 "the station file, or the instrument's own), the wiring (a short, a node on the wrong channel) and "
                 "the device under test, then resume the run")
    elif -199 <= exc.code <= -100:
        check = ("it does not know a command or its syntax: check that it is the model `kind` names, in the "
                 f"command language hil-ep speaks (SCPI; TSP on a 2600) and on a current firmware "
                 f"(hil instruments check {source})")
    else:
        check = ("it refused a value or a setting: check the station's limits and wiring against the instrument's "
                 "ranges and its front panel, then resume the run")
    return InstrumentReported(f"{said}; {check}")
