"""Safety and ramps: limits before sending, ramps at the station's rate, the safe state, signals.

`SafetyMixin` is the part of `LabCrossbar` that keeps the hardware safe: `check_request`
checks a whole batch against the station's limits before its first command, `_ramp_to`
moves every source at no more than the ramp rate (each step checked), and `safe_state`
ramps every source to 0 V and off with writes only, on close, exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import atexit
import logging
import math
import signal
import threading
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hil.interface import Nudge
from hil.station import BoardConductance, FixedConductance, expand_refs

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class SafetyMixin:
    """Limits, ramps, nudge switching and the safe state of a `LabCrossbar`."""

    station: Any
    source: str
    config: Any
    guard: Any
    topology: Any
    instruments: dict[str, Any]
    inputs: list[tuple[str, str]]
    nudges: list[tuple[str, str]]
    v_unit: float
    g_unit: float
    _g_s: dict[str, np.ndarray]
    _cleaning: bool
    _previous_sigterm: Any
    cleanup_failures: list[str]

    # --- signals -------------------------------------------------------------------------
    def _install_handlers(self) -> None:
        atexit.register(self._at_exit)
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self._cleaning:
            log.warning("SIGTERM during cleanup: ignored until the safe state is reached")
            return
        log.warning("SIGTERM: bringing the station to its safe state")
        raise SystemExit(128 + signum)  # unwinds through `with` blocks and close()

    def _on_sigint_during_cleanup(self, signum: int, frame: Any) -> None:
        log.warning("Ctrl-C during cleanup: ignored until every source is at 0 V and off")

    def _at_exit(self) -> None:
        if not self._closed:
            self.close()

    def _restore_handlers(self) -> None:
        atexit.unregister(self._at_exit)
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


    def check_request(self, inputs: Tensor, nudge: Nudge | None = None) -> None:
        """Every limit a measure() of these inputs would meet; raises LimitError, sends nothing."""
        topo = self.topology
        if inputs.ndim != 2 or inputs.shape[1] != topo.n_in:
            raise ValueError(f"inputs must have shape (B, {topo.n_in}), got {tuple(inputs.shape)}")
        x = inputs.detach().to("cpu", torch.float64).numpy() * self.v_unit
        names = [f"input {i} ({inst}.{ch})" for i, (inst, ch) in enumerate(self.inputs)]
        self.guard.check_levels(names, [inst for inst, _ in self.inputs], x, "inputs")
        v_bound = float(np.max(np.abs(x), initial=0.0))
        if nudge is not None:
            if self.station.nudge is None:
                from hil.errors import LimitError

                raise LimitError(f"{self.source}: this station has no nudge sources (nudge: is not set)")
            t = torch.as_tensor(nudge.target).detach().to("cpu", torch.float64).numpy() * self.v_unit
            t = np.broadcast_to(t, (x.shape[0], topo.n_out))
            tnames = [f"nudge {i} ({inst}.{ch})" for i, (inst, ch) in enumerate(self.nudges)]
            self.guard.check_levels(tnames, [inst for inst, _ in self.nudges], t, "nudge targets")
            cond = self.station.nudge.conductance
            fixed = cond.beta_s if isinstance(cond, FixedConductance) else None
            self.guard.check_beta(float(nudge.beta) * self.g_unit, fixed)
            v_bound = max(v_bound, float(np.max(np.abs(t), initial=0.0)))
        self.guard.check_power(self._g_s, x, v_bound)


    def _ramp_to(self, levels: dict[tuple[str, str], float]) -> None:
        """Move every source to its new level at no more than the ramp rate; each step checked.

        Vectorised over the sources (a 1568-input board ramps in one array operation per step);
        each instrument gets one write per step with the channels that change.
        """
        refs = list(levels)
        target = np.array([levels[r] for r in refs], dtype=np.float64)
        start = np.array([self.instruments[i].last_levels.get(c, 0.0) for i, c in refs], dtype=np.float64)
        delta = float(np.max(np.abs(target - start), initial=0.0))
        if delta == 0.0:
            return
        n = max(1, math.ceil(delta / self.guard.max_step_v - 1e-9))
        names = [f"{i}.{c}" if c else i for i, c in refs]
        insts = [i for i, _ in refs]
        groups: dict[str, list[int]] = {}
        for k, inst in enumerate(insts):
            groups.setdefault(inst, []).append(k)
        touched: set[str] = set()
        for k in range(1, n + 1):
            step = target if k == n else start + (target - start) * (k / n)
            self.guard.check_levels(names, insts, step, "ramp step")
            for inst, idx in groups.items():
                current = self.instruments[inst].last_levels
                lv = {refs[j][1]: float(step[j]) for j in idx if current.get(refs[j][1]) != float(step[j])}
                if lv:
                    self._call(inst, lambda i=self.instruments[inst], l=lv: i.apply_levels(l))
                    touched.add(inst)
            if k < n:
                time.sleep(self.station.limits.ramp_step_s)
        for inst in sorted(touched):  # one error-queue check per instrument and ramp
            self._call(inst, lambda i=self.instruments[inst]: i.raise_errors("source levels"))

    def _connect_nudge(self, beta_s: float) -> None:
        """Tie the outputs to their nudge sources; through `_call` (a lost link is retried, like a read)."""
        cond = self.station.nudge.conductance  # type: ignore[union-attr]
        if isinstance(cond, BoardConductance):
            self._call(cond.instrument, lambda b=self.instruments[cond.instrument]: _nudge_on(b, beta_s))
        elif cond.switch:
            by_matrix = self._by_instrument(expand_refs(cond.switch))
            for name, chans in by_matrix.items():
                self._call(name, lambda m=self.instruments[name], c=chans: m.route(c))

    def _disconnect_nudge(self) -> None:
        cond = self.station.nudge.conductance  # type: ignore[union-attr]
        if isinstance(cond, BoardConductance):
            self._call(cond.instrument, lambda b=self.instruments[cond.instrument]: setattr(b, "nudge_enabled", False))
        elif cond.switch:
            for name in self._by_instrument(expand_refs(cond.switch)):
                self._call(name, self.instruments[name].open_all)

    def safe_state(self) -> None:
        """Every source ramped to 0 V and off, switches open: writes only, bounded in time; never raises.

        Not done again when nothing was sent since the last time (the runner's safe state, then close()):
        the same writes, the same failures, said twice.  What could not be done is said once per instrument:
        for one with outputs, that its safe state is not confirmed (check it by hand); for one that only
        measures, that it could not be reached.
        """
        sent = sum(getattr(inst, "writes", 0) for inst in self.instruments.values())
        if self._safe_at == sent:
            log.debug("safe_state: nothing sent since the last one; not repeated")
            return
        self._cleaning = True
        previous_sigint = None
        if threading.current_thread() is threading.main_thread():  # a 2nd Ctrl-C must not cut cleanup short
            previous_sigint = signal.signal(signal.SIGINT, self._on_sigint_during_cleanup)
        deadline = time.monotonic() + self.config.cleanup_timeout_s
        lim = self.station.limits
        failures: list[str] = []
        order = sorted(self.instruments.items(), key=lambda kv: _cleanup_rank(kv[1]))
        try:
            for name, inst in order:
                before = len(inst.cleanup_failures)
                try:
                    ok = inst.safe_shutdown(self.guard.max_step_v, lim.ramp_step_s, deadline)
                except Exception as exc:  # a driver bug must not stop the others
                    log.debug("%s: safe_shutdown raised", name, exc_info=True)
                    ok = False
                    inst.cleanup_failures.append(("its shutdown", f"{type(exc).__name__}: {exc}"))
                if not ok:
                    failures.append(name)
                    _report(name, inst, inst.cleanup_failures[before:])
        finally:
            self._cleaning = False
            if previous_sigint is not None:
                signal.signal(signal.SIGINT, previous_sigint)
            self._safe_at = sum(getattr(inst, "writes", 0) for inst in self.instruments.values())
        self.cleanup_failures = failures


def _report(name: str, inst: Any, failed: list[tuple[str, str]]) -> None:
    """One line for an instrument whose cleanup did not all go out, saying only what is true of it."""
    why = list(dict.fromkeys(w for _, w in failed))
    what = ", ".join(c for c, _ in failed[:4]) + (f" (+{len(failed) - 4} more)" if len(failed) > 4 else "") \
        + f" ({'; '.join(why[:2])})" if failed else "nothing (the cleanup deadline was reached first)"
    if getattr(inst, "has_outputs", True):
        log.error("%s: could not confirm its safe state (0 V, outputs off): not sent: %s; check it by hand",
                  name, what)
    else:
        log.warning("%s: could not be reached during cleanup (not sent: %s); it drives no outputs", name, what)


def _nudge_on(board: Any, beta_s: float) -> None:
    """The board's nudge conductance set and connected, its error queue read (idempotent: retried as one)."""
    board.nudge_conductance = beta_s
    board.nudge_enabled = True
    board.raise_errors("nudge")


def _cleanup_rank(inst: Any) -> int:
    """Sources first (they carry the energy), then readers, switch matrices last."""
    if getattr(inst, "last_levels", None):
        return 0
    if hasattr(inst, "route"):
        return 2
    return 1


