"""`LabCrossbar`: the `Crossbar` interface on a physical board, assembled from a station file.

Opening a station goes in three passes so that a bad station touches nothing:
validate the file and its fit to the topology, open every VISA session and ask
each instrument `*IDN?`, and only then configure (ranges, compliance, scan lists,
outputs on at 0 V).  Every level, ramp step, nudge and programmed block goes
through `Guard` before the first command of the request is sent.  `safe_state()`
ramps every source to 0 V and switches it off with writes only, a short timeout per
write and an overall deadline; it runs on `close()`, on leaving a `with` block (normal
exit, exception, Ctrl-C), at interpreter exit and on SIGTERM.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat
from torch import Tensor

from hil.config import validate_section
from hil.drivers.base import InstrumentError, ReplyError
from hil.drivers.limits import Guard
from hil.drivers.pulse import PulseProgrammer
from hil.errors import ConfigError
from hil.interface import Measurement, Nudge, ProgramReport, Topology
from hil.station import (
    BoardConductance,
    BoardProgramming,
    FixedConductance,
    InstrumentSpec,
    PulseProgramming,
    Station,
    expand_refs,
    load_station,
    parse_ref,
)

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


class LabConfig(BaseModel):
    """The `crossbar:` section of a run config when `kind: lab`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["lab"] = "lab"
    station: str = Field(description="path of the station file")
    cleanup_timeout_s: PositiveFloat = Field(5.0, description="deadline of safe_state() (s)")
    verify_tolerance: PositiveFloat = Field(0.05, lt=1.0, description="relative read-back tolerance of program()")


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
        raise ConfigError(
            f"{source}: instruments.{name}.address: cannot open {spec.address!r} ({_reason(exc)})"
        ) from None
    if "SOCKET" in spec.address.upper():
        refused = socket_error(adapter.connection)
        if refused:
            _close_adapter_only(adapter)
            raise ConfigError(f"{source}: instruments.{name}.address: cannot connect to {spec.address!r} "
                              f"({os.strerror(refused)})")
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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


class LabCrossbar:
    """A resistive network on a board: conductances programmed, nodes driven and read by instruments."""

    def __init__(
        self,
        topology: Topology,
        station: Station,
        *,
        config: LabConfig | None = None,
        source: str = "station",
        instruments: dict[str, Any] | None = None,
    ) -> None:
        self.topology = topology
        self.station = station
        self.config = config or LabConfig(station=source)
        self.source = source
        self.guard = Guard(station.limits)
        self.g_unit = station.scales.g_unit_s or topology.g_unit
        self.v_unit = station.scales.v_unit_v or topology.v_unit
        self._closed = False
        self._cleaning = False
        self.cleanup_failures: list[str] = []
        self._check_fit()
        self.inputs = station.input_refs()
        self.layers = station.layer_refs()
        self.nudges = station.nudge_refs()
        # pass 1 and 2: sessions, then *IDN? of each; nothing is configured before all answer
        self.instruments = instruments if instruments is not None else self._open_all()
        self.idn: dict[str, str] = {}
        self._esr_ok: dict[str, bool] = {}
        self._g_s: dict[str, np.ndarray] = {}
        self._held: dict[str, list[np.ndarray]] = {}  # what a board may hold now, per block
        configuring = False
        try:
            self._identify_all()
            configuring = True  # from here on, something may be on: clean up on failure
            self._configure_all()
            self._g_s = self._initial_conductances()
            self._held = {k: [v] for k, v in self._g_s.items()}
        except BaseException:
            if configuring:
                self.safe_state()
            if instruments is None:
                self._close_sessions()
            raise
        self._previous_sigterm: Any = None
        self._install_handlers()

    # --- construction -------------------------------------------------------------------
    @classmethod
    def check_spec(
        cls, spec: dict[str, Any], source: str, topology: Topology | None = None
    ) -> tuple[LabConfig, Station, Path]:
        """Validate a `crossbar:` section, its station file and (given a topology) its fit, opening nothing."""
        cfg = validate_section(LabConfig, spec, source, prefix="crossbar")
        path = Path(cfg.station)
        if not path.is_absolute() and not path.exists() and Path(source).parent.joinpath(path).exists():
            path = Path(source).parent / path
        station = load_station(path)
        if topology is not None:
            check_fit(station, topology, str(path))
        return cfg, station, path

    @classmethod
    def from_spec(cls, topology: Topology, spec: dict[str, Any], *, seed: int, source: str) -> LabCrossbar:
        """Build from a config's `crossbar:` section `{kind: lab, station: FILE}`; errors name the key."""
        cfg, station, path = cls.check_spec(spec, source)
        return cls(topology, station, config=cfg, source=str(path))

    @classmethod
    def open(cls, topology: Topology, path: str | Path, **kwargs: Any) -> LabCrossbar:
        return cls(topology, load_station(path), source=str(path), **kwargs)

    def __repr__(self) -> str:
        return f"LabCrossbar(layers={self.topology.layers}, station={self.source!r}, {self.config!r})"

    def _check_fit(self) -> None:
        """The station's wiring matches the topology: one channel per node."""
        check_fit(self.station, self.topology, self.source)

    def _open_all(self) -> dict[str, Any]:
        classes = driver_classes()
        opened: dict[str, Any] = {}
        try:
            for name, spec in self.station.instruments.items():
                adapter = open_session(name, spec, self.source)
                inst = classes[spec.kind](adapter, name=name, binary=spec.transfer == "binary")
                inst.cleanup_timeout_s = spec.cleanup_timeout_s
                opened[name] = inst
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
                    f"({_reason(exc)})"
                ) from None
            hint = IDN_HINTS[spec.kind]
            if hint.upper() not in idn.upper():
                raise ConfigError(
                    f"{self.source}: instruments.{name}.kind: {spec.kind}, but {spec.address!r} answers {idn!r}"
                )
            self.idn[name] = idn
            self._esr_ok[name] = self._clear_power_on(name, inst)

    def _by_instrument(self, refs: list[tuple[str, str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for inst, ch in refs:
            out.setdefault(inst, [])
            if ch not in out[inst]:
                out[inst].append(ch)
        return out

    def _configure_all(self) -> None:
        st, lim = self.station, self.station.limits
        for inst in self.instruments.values():
            inst.configure()
        for name, chans in self._by_instrument(self.inputs + self.nudges).items():
            self.instruments[name].configure_source(chans, lim.v_max(name), lim.compliance_a)
        self.read_groups = self._by_instrument([ref for layer in self.layers for ref in layer])
        for name, chans in self.read_groups.items():
            spec = st.instruments[name]
            self.instruments[name].configure_reads(chans, lim.v_max(name), spec.nplc)
        self.programmer: PulseProgrammer | None = None
        prog = st.conductances
        if isinstance(prog, PulseProgramming):
            smu_name, ch, _ = parse_ref(prog.smu)
            smu = self.instruments[smu_name]
            assert lim.pulse_v_abs_max is not None
            smu.configure_source([ch], lim.pulse_v_abs_max, lim.compliance_a)
            smu.last_levels[ch] = 0.0
            self.programmer = PulseProgrammer(prog, smu, ch, self.instruments[prog.matrix], self.guard)
        if st.nudge is not None and isinstance(st.nudge.conductance, BoardConductance):
            self.instruments[st.nudge.conductance.instrument].configure_nudge(lim.g_min_s, lim.g_max_s)

    def _initial_conductances(self) -> dict[str, np.ndarray]:
        """What the cells hold now (S): read back from a board, assumed g_max for memristive cells."""
        out: dict[str, np.ndarray] = {}
        prog = self.station.conductances
        for name, shape in self.topology.blocks.items():
            if isinstance(prog, BoardProgramming):
                board = self.instruments[prog.instrument]
                blk = prog.blocks.get(name, name)
                if blk in board.blocks:
                    out[name] = board.get_block(blk)
                    continue
            out[name] = np.full(shape, self.station.limits.g_max_s)
        return out

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

    # --- the Crossbar interface ----------------------------------------------------------
    def __enter__(self) -> LabCrossbar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, name: str, fn: Callable[[], T]) -> T:
        """Run one instrument operation; reopen a dropped session with back-off and retry."""
        tries = self.station.instruments[name].reconnect_tries if name in self.station.instruments else 0
        delay = 0.2
        reopened = True
        for attempt in range(tries + 1):
            try:
                if not reopened:
                    raise ConnectionError(f"{name}: not reconnected")
                return fn()
            except Exception as exc:
                if attempt == tries or not _is_retryable(exc):
                    raise
                log.warning("%s: %s (%s); reconnecting in %.1f s and retrying", name,
                            "session dropped" if _is_dropped(exc) else "no usable reply", _reason(exc), delay)
                time.sleep(delay)
                delay *= 2
                reopened = self._reopen(name)
        raise AssertionError("unreachable")

    def _reopen(self, name: str) -> bool:
        """A fresh session (a late reply to the old one is never read); raises if the instrument restarted."""
        inst = self.instruments[name]
        spec = self.station.instruments[name]
        _close_adapter(inst)
        try:
            inst.adapter = open_session(name, spec, self.source)
        except ConfigError as exc:
            log.warning("%s: reconnect failed: %s", name, exc)
            return False
        try:
            self._check_restart(name)
        except InstrumentRestarted:
            raise
        except Exception as exc:  # the fresh session failed too: the next attempt reopens again
            log.warning("%s: reconnected, but the restart check failed: %s", name, _reason(exc))
            return False
        return True

    def _clear_power_on(self, name: str, inst: Any) -> bool:
        """Read (and so clear) `*ESR?` at open; True when the instrument answers it with a number."""
        if self.station.instruments[name].kind == "conductance_board" or "SOCKET" not in \
                self.station.instruments[name].address.upper():
            return False
        try:
            with inst.short_timeout(self.station.instruments[name].cleanup_timeout_s):
                int(inst.ask("*ESR?").strip())
            return True
        except Exception as exc:
            log.debug("%s: no *ESR? (%s); restarts are not detected by its power-on bit", name, _reason(exc))
            return False

    def _check_restart(self, name: str) -> None:
        """After a reconnect: did the instrument restart (and lose its state)?  Raises InstrumentError if so.

        A board must still hold the blocks written to it; an IEEE 488.2 instrument must not show the
        power-on bit (PON, 128) of `*ESR?`, which was cleared at open.
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
            raise InstrumentRestarted(f"{name}: restarted while in use (its state is lost); stopping. Check it, then "
                                  "resume the run")

    def program(self, g: dict[str, Tensor], *, verify: bool = True) -> ProgramReport:
        """Write conductances (in g_unit) and biases; cells outside the device range are clipped and counted."""
        shapes = self.topology.parameter_shapes()
        lim = self.station.limits
        plan: list[tuple[str, np.ndarray, Tensor]] = []
        clipped: dict[str, int] = {}
        for name, value in g.items():
            if name not in shapes:
                raise KeyError(f"{name!r} is not a parameter of this topology ({', '.join(shapes)})")
            if tuple(value.shape) != shapes[name]:
                raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {shapes[name]}")
            arr = value.detach().to("cpu", torch.float64).numpy()
            if name.startswith("G"):
                phys, n_clip = self.guard.clip_conductances(arr * self.g_unit)
                if n_clip:
                    clipped[name] = n_clip
            else:
                phys = arr * self.g_unit * self.v_unit  # bias current (A)
                if not np.all(np.isfinite(phys)) or np.max(np.abs(phys), initial=0.0) > lim.compliance_a:
                    from hil.errors import LimitError

                    raise LimitError(f"program: bias {name} needs up to {np.max(np.abs(phys)):.3g} A, beyond "
                                     f"compliance_a = {lim.compliance_a:g} A; nothing sent")
            plan.append((name, phys, value))
        prog = self.station.conductances
        achieved: dict[str, Tensor] = {}
        failed: dict[str, int] = {}
        writes = 0
        for name, phys, value in plan:
            unit = self.g_unit if name.startswith("G") else self.g_unit * self.v_unit
            if isinstance(prog, BoardProgramming):
                board = self.instruments[prog.instrument]
                blk = prog.blocks.get(name, name)
                if blk not in board.blocks:
                    log.warning("program: %s is not on the board (no block %r); not written", name, blk)
                    failed[name] = value.numel()
                    achieved[name] = torch.full_like(value, float("nan"))
                    continue
                if name in self._g_s:  # a restart check during this write accepts the old or the new block
                    self._held[name] = [self._g_s[name], phys]
                self._call(prog.instrument, lambda b=board, k=blk, p=phys: b.set_block(k, p))
                writes += 1
                got = self._call(prog.instrument, lambda b=board, k=blk: b.get_block(k)) if verify else phys
                floor = lim.g_min_s if name.startswith("G") else 1e-3 * lim.compliance_a
                tol = self.config.verify_tolerance * np.maximum(np.abs(phys), floor)
                bad = int(np.sum(np.abs(got - phys) > tol))
                if bad:
                    failed[name] = bad
            else:
                assert self.programmer is not None
                if not name.startswith("G"):
                    log.warning("program: %s: a memristive crossbar has no bias sources; not written", name)
                    failed[name] = value.numel()
                    achieved[name] = torch.full_like(value, float("nan"))
                    continue
                layer = int(name[1:])
                rep = self.programmer.program_block(layer, phys)
                got = rep.achieved
                writes += rep.pulses
                if rep.failed:
                    failed[name] = len(rep.failed)
            if name.startswith("G"):
                self._g_s[name] = np.asarray(got, dtype=np.float64)
                self._held[name] = [self._g_s[name]]
            achieved[name] = torch.as_tensor(np.asarray(got) / unit, dtype=value.dtype, device=value.device)
        return ProgramReport(requested=g, achieved=achieved, writes=writes, clipped=clipped, failed=failed)

    def read_conductances(self) -> dict[str, Tensor]:
        prog = self.station.conductances
        out: dict[str, Tensor] = {}
        dtype = torch.get_default_dtype()
        for name, shape in self.topology.parameter_shapes().items():
            unit = self.g_unit if name.startswith("G") else self.g_unit * self.v_unit
            if isinstance(prog, BoardProgramming):
                board = self.instruments[prog.instrument]
                blk = prog.blocks.get(name, name)
                if blk not in board.blocks:
                    out[name] = torch.full(shape, float("nan"), dtype=dtype)
                    continue
                arr = self._call(prog.instrument, lambda b=board, k=blk: b.get_block(k))
            elif name.startswith("G"):
                assert self.programmer is not None
                arr = self.programmer.read_block(int(name[1:]), shape)  # type: ignore[arg-type]
            else:
                out[name] = torch.full(shape, float("nan"), dtype=dtype)
                continue
            out[name] = torch.as_tensor(np.asarray(arr) / unit, dtype=dtype)
        return out

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

    def measure(
        self,
        inputs: Tensor,
        *,
        nudge: Nudge | None = None,
        n_samples: int = 1,
        keep_samples: bool = False,
    ) -> Measurement:
        """Drive the inputs (and nudge), let the network settle, read every free node n_samples times."""
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        self.check_request(inputs, nudge)  # the whole batch, before the first command
        x = inputs.detach().to("cpu", torch.float64).numpy() * self.v_unit
        t = None
        if nudge is not None:
            t = np.broadcast_to(
                torch.as_tensor(nudge.target).detach().to("cpu", torch.float64).numpy() * self.v_unit,
                (x.shape[0], self.topology.n_out),
            )
        batch = x.shape[0]
        raw = [np.empty((n_samples, batch, len(layer))) for layer in self.layers]
        times = np.zeros(n_samples)
        t_start = time.monotonic()
        if nudge is not None:
            self._connect_nudge(float(nudge.beta) * self.g_unit)
        try:
            for b in range(batch):
                levels = {ref: float(v) for ref, v in zip(self.inputs, x[b], strict=True)}
                if t is not None:
                    levels.update({ref: float(v) for ref, v in zip(self.nudges, t[b], strict=True)})
                self._ramp_to(levels)
                if self.station.wiring.settle_s:
                    time.sleep(self.station.wiring.settle_s)
                t0 = time.monotonic()
                reads = {
                    name: self._call(name, lambda i=self.instruments[name], c=chans: i.read_voltages(c, n_samples))
                    for name, chans in self.read_groups.items()
                }
                t1 = time.monotonic()
                if b == 0:
                    times = (t0 - t_start) + (t1 - t0) * np.arange(n_samples) / n_samples
                for l, layer in enumerate(self.layers):
                    for j, (inst, ch) in enumerate(layer):
                        raw[l][:, b, j] = reads[inst][:, self.read_groups[inst].index(ch)]
        finally:
            if nudge is not None:
                self._disconnect_nudge()
        dtype = inputs.dtype if inputs.dtype.is_floating_point else torch.get_default_dtype()
        means, stds, samples = [], [], [] if keep_samples else None
        for arr in raw:
            v = arr / self.v_unit
            means.append(torch.as_tensor(v.mean(axis=0), dtype=dtype))
            std = v.std(axis=0, ddof=1) if n_samples > 1 else np.zeros(v.shape[1:])
            stds.append(torch.as_tensor(std, dtype=dtype))
            if samples is not None:
                samples.append(torch.as_tensor(v, dtype=dtype))
        info = {"duration_s": time.monotonic() - t_start}
        return Measurement(means, stds, n_samples, torch.as_tensor(times, dtype=torch.float64), samples, info)

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
        cond = self.station.nudge.conductance  # type: ignore[union-attr]
        if isinstance(cond, BoardConductance):
            board = self.instruments[cond.instrument]
            board.nudge_conductance = beta_s
            board.nudge_enabled = True
            board.raise_errors("nudge")
        elif cond.switch:
            by_matrix = self._by_instrument(expand_refs(cond.switch))
            for name, chans in by_matrix.items():
                self.instruments[name].route(chans)

    def _disconnect_nudge(self) -> None:
        cond = self.station.nudge.conductance  # type: ignore[union-attr]
        if isinstance(cond, BoardConductance):
            self.instruments[cond.instrument].nudge_enabled = False
        elif cond.switch:
            for name in self._by_instrument(expand_refs(cond.switch)):
                self.instruments[name].open_all()

    def safe_state(self) -> None:
        """Every source ramped to 0 V and off, switches open: writes only, bounded in time; never raises."""
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
                try:
                    ok = inst.safe_shutdown(self.guard.max_step_v, lim.ramp_step_s, deadline)
                except Exception as exc:  # a driver bug must not stop the others
                    log.exception("%s: safe_shutdown failed", name)
                    ok = False
                    inst.cleanup_failures.append(f"{name}: {exc}")
                if not ok:
                    failures.append(name)
            if failures:
                log.error("safe_state: could not bring %s to the safe state; check them by hand",
                          ", ".join(failures))
        finally:
            self._cleaning = False
            if previous_sigint is not None:
                signal.signal(signal.SIGINT, previous_sigint)
        self.cleanup_failures = failures

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.safe_state()
        finally:
            self._close_sessions()
            self._restore_handlers()

    def _close_sessions(self) -> None:
        for inst in self.instruments.values():
            _close_adapter(inst)


def check_fit(st: Station, topo: Topology, src: str) -> None:
    """The station's wiring matches the topology: one channel per node; a ConfigError names the key."""
    problems = st.problems()
    if problems:
        raise ConfigError(f"{src}: {problems[0]}")
    n_in = len(expand_refs(st.wiring.inputs))
    if n_in != topo.n_in:
        raise ConfigError(f"{src}: wiring.inputs: {n_in} channels for {topo.n_in} input nodes")
    if len(st.wiring.layers) != topo.depth:
        raise ConfigError(f"{src}: wiring.layers: {len(st.wiring.layers)} layers for {topo.depth} free layers")
    for l, refs in enumerate(st.wiring.layers):
        n = len(expand_refs(refs))
        if n != topo.layers[l + 1]:
            raise ConfigError(f"{src}: wiring.layers.{l}: {n} channels for {topo.layers[l + 1]} nodes")
    if st.nudge is not None and len(st.nudge_refs()) != topo.n_out:
        raise ConfigError(f"{src}: nudge.sources: {len(st.nudge_refs())} channels for {topo.n_out} outputs")
    prog = st.conductances
    if isinstance(prog, PulseProgramming):
        if len(prog.columns) != len(topo.layers):
            raise ConfigError(f"{src}: conductances.columns: {len(prog.columns)} layers, expected "
                              f"{len(topo.layers)}")
        for l, cols in enumerate(prog.columns):
            if len(cols) != topo.layers[l]:
                raise ConfigError(f"{src}: conductances.columns.{l}: {len(cols)} columns for "
                                  f"{topo.layers[l]} nodes")


def _cleanup_rank(inst: Any) -> int:
    """Sources first (they carry the energy), then readers, switch matrices last."""
    if getattr(inst, "last_levels", None):
        return 0
    if hasattr(inst, "route"):
        return 2
    return 1


def _close_adapter(inst: Any) -> None:
    try:
        inst.adapter.close()
    except Exception as exc:
        log.debug("%s: close failed: %s", getattr(inst, "name", inst), exc)


class InstrumentRestarted(InstrumentError):
    """An instrument came back from a restart (power cycle, reboot) and lost what it was told."""


def _is_retryable(exc: BaseException) -> bool:
    """Worth a fresh session and one more try: a dropped link, a timeout, an unreadable reply.

    Every operation LabCrossbar retries is idempotent (absolute levels, whole blocks, reads).
    """
    if isinstance(exc, (ReplyError, UnicodeDecodeError)) or _is_dropped(exc):
        return True
    try:
        from pyvisa import constants, errors

        return isinstance(exc, errors.VisaIOError) and exc.error_code == constants.StatusCode.error_timeout
    except ImportError:  # pragma: no cover
        return False


def _is_dropped(exc: BaseException) -> bool:
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


def _channel_problem(kind: str, ch: str, inst: Any) -> str | None:
    """Why `ch` is not a channel of this instrument, or None."""
    if kind in ("keithley2400", "keithley2450"):
        return None if ch == "" else f"{kind} has a single channel (write just the instrument name)"
    if kind == "keithley2600":
        return None if ch in ("a", "b") else "2600 channels are a and b"
    if kind in ("daq970a", "agilent34970a", "daq6510"):
        from hil.drivers.keithley_daq6510 import CHANNELS as DAQ6510_CHANNELS
        from hil.drivers.keysight_daq970a import CHANNELS as DAQ970_CHANNELS

        allowed = DAQ6510_CHANNELS if kind == "daq6510" else DAQ970_CHANNELS
        return None if ch.isdigit() and int(ch) in allowed else f"no channel {ch!r} on a {kind}"
    if kind == "conductance_board":
        n = int(inst.dac_count) if inst is not None else None
        if not ch.isdigit() or (n is not None and int(ch) >= n):
            return f"no DAC channel {ch!r} (the board has {n})"
        return None
    return f"a {kind} has no source or read channels"


def dry_run(station: Station, instruments: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """The wiring, node by node, checked against the instruments (queries only); (lines, problems)."""
    lines: list[str] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    groups = [("inputs", station.input_refs())]
    groups += [(f"layer {l + 1}", refs) for l, refs in enumerate(station.layer_refs())]
    if station.nudge is not None:
        groups.append(("nudge", station.nudge_refs()))
    for label, refs in groups:
        for i, (inst, ch) in enumerate(refs):
            node = f"{label} node {i}"
            if (inst, ch) in seen:
                problems.append(f"{node}: {inst}.{ch} is already wired to {seen[inst, ch]}")
            seen[inst, ch] = node
            kind = station.instruments[inst].kind
            why = _channel_problem(kind, ch, (instruments or {}).get(inst) if kind == "conductance_board" else None)
            if why:
                problems.append(f"{node}: {inst}.{ch}: {why}")
        lines.append(f"  {label:9s} {len(refs):4d} nodes: " + ", ".join(
            f"{i}.{c}" if c else i for i, c in refs[:6]) + (" ..." if len(refs) > 6 else ""))
    sizes = [len(station.input_refs())] + [len(r) for r in station.layer_refs()]
    prog = station.conductances
    if isinstance(prog, BoardProgramming):
        board = (instruments or {}).get(prog.instrument)
        catalog = board.catalog() if board is not None else None
        for l in range(1, len(sizes)):
            name = f"G{l}"
            blk = prog.blocks.get(name, name)
            shape = (sizes[l - 1], sizes[l])
            if catalog is not None and catalog.get(blk) != shape:
                problems.append(f"conductances: board block {blk!r} is {catalog.get(blk)}, the wiring needs {shape}")
            lines.append(f"  {name}: board block {blk} {shape}")
    else:
        for l in range(1, len(sizes)):
            lines.append(f"  G{l}: pulse-programmed through {prog.matrix} with {prog.smu} "
                         f"(rows {prog.hi_row}/{prog.lo_row}, slot {prog.slot})")
    return lines, problems


def check_station(path: str | Path) -> list[str]:
    """`hil instruments check`: open, *IDN?, error queues, limits and a dry run; only queries are sent."""
    from hil.errors import UserError

    station = load_station(path)
    source = str(path)
    lines = [f"station {station.name!r} ({path})"]
    classes = driver_classes()
    opened: dict[str, Any] = {}
    try:
        for name, spec in station.instruments.items():
            adapter = open_session(name, spec, source)
            opened[name] = classes[spec.kind](adapter, name=name, binary=spec.transfer == "binary")
        for name, inst in opened.items():
            spec = station.instruments[name]
            try:
                idn = inst.identify()
                errors = inst.check_errors()
            except Exception as exc:
                raise ConfigError(f"{source}: instruments.{name}.address: no answer from {spec.address!r} "
                                  f"({_reason(exc)})") from None
            if IDN_HINTS[spec.kind].upper() not in idn.upper():
                raise ConfigError(f"{source}: instruments.{name}.kind: {spec.kind}, but {spec.address!r} "
                                  f"answers {idn!r}")
            errs = "; ".join(f"{c} {m}" for c, m in errors) or "none"
            lines.append(f"  {name:10s} {spec.kind:18s} {spec.address}  {idn}  errors: {errs}")
        lim = station.limits
        lines.append(f"limits: |V| <= {lim.v_abs_max:g} V"
                     + "".join(f", {k} <= {v:g} V" for k, v in lim.v_abs_max_per_source.items())
                     + f"; compliance {lim.compliance_a:g} A; cell power <= {lim.cell_power_max_w:g} W; "
                     f"ramp {lim.ramp_v_per_s:g} V/s; g in [{lim.g_min_s:g}, {lim.g_max_s:g}] S"
                     + (f"; pulses <= {lim.pulse_v_abs_max:g} V" if lim.pulse_v_abs_max else ""))
        lines.append("wiring (dry run, nothing sent):")
        wiring, problems = dry_run(station, opened)
        lines += wiring
    finally:
        for inst in opened.values():
            _close_adapter(inst)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{source}: wiring: {problems[0]}{more}")
    lines.append("ok")
    return lines
