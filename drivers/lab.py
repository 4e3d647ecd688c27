"""`LabCrossbar`: the `Crossbar` interface on a physical board, assembled from a station file.

Opening a station goes in three passes so that a bad station touches nothing:
validate the file, its fit to the topology and its limits against the instruments'
ratings, open every VISA session and ask each instrument `*IDN?` (and check the
limits against the model it names), and only then configure (ranges, compliance,
scan lists, outputs on at 0 V).  Every level, ramp step, nudge and programmed block
goes through `Guard` before the first command of the request is sent.

The jobs live in their own modules: `sessions` (links, retries, restarts), `stops` (the one
line a run stops with: a dead link, a restart, an error the instrument reported), `safety`
(limits, ramps, the safe state and signals), `station_check` (wiring, ratings and
`hil instruments check`); this module is the crossbar itself.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, PositiveFloat
from torch import Tensor

from hil.config import Strict, validate_section
from hil.drivers.base import QueuedError
from hil.drivers.limits import Guard
from hil.drivers.pulse import PulseProgrammer
from hil.drivers.safety import SafetyMixin
from hil.drivers.sessions import SessionsMixin
from hil.drivers.station_check import check_board_range, check_fit, check_station  # noqa: F401 (check_station: its old home)
from hil.interface import Measurement, Nudge, ProgramReport, Topology
from hil.station import (
    BoardConductance,
    BoardProgramming,
    PulseProgramming,
    Station,
    load_station,
    parse_ref,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class LabConfig(Strict):
    """The `crossbar:` section of a run config when `kind: lab`."""

    kind: Literal["lab"] = "lab"
    station: str = Field(description="path of the station file")
    cleanup_timeout_s: PositiveFloat = Field(5.0, description="deadline of safe_state() (s)")
    verify_tolerance: PositiveFloat = Field(0.05, lt=1.0, description="relative read-back tolerance of program()")



class LabCrossbar(SessionsMixin, SafetyMixin):
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
        self._safe_at: int | None = None  # messages sent when the safe state was last brought about
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
        except BaseException as exc:
            if configuring:
                self.safe_state()
            if instruments is None:
                self._close_sessions()
            if isinstance(exc, QueuedError):  # an instrument refused its configuration: one line, its own words
                raise self._reported(exc) from None
            raise
        self._previous_sigterm: Any = None
        self._install_handlers()

    def describe(self) -> dict[str, object]:
        """Get the station, instrument identities (*IDN? at open), limits and last source levels (V)."""
        return {
            "station": self.station.name, "source": self.source,
            "instruments": {name: {"kind": spec.kind, "address": spec.address, "idn": self.idn.get(name, "")}
                            for name, spec in self.station.instruments.items()},
            "limits": self.station.limits.model_dump(mode="json"),
            "last_levels_v": {name: dict(getattr(inst, "last_levels", {}) or {})
                              for name, inst in self.instruments.items()},
            "cleanup_failures": list(self.cleanup_failures),
        }

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

    def _by_instrument(self, refs: list[tuple[str, str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for inst, ch in refs:
            out.setdefault(inst, [])
            if ch not in out[inst]:
                out[inst].append(ch)
        return out

    def _configure_all(self) -> None:
        st, lim = self.station, self.station.limits
        check_board_range(st, self.instruments, self.source)
        for inst in self.instruments.values():
            inst.configure()
        for name, chans in self._by_instrument(self.inputs + self.nudges).items():
            self.instruments[name].configure_source(chans, lim.v_max(name), lim.compliance_a)
        self.read_groups = self._by_instrument([ref for layer in self.layers for ref in layer])
        for name, chans in self.read_groups.items():
            spec = st.instruments[name]
            self.instruments[name].configure_reads(chans, lim.v_max(name), spec.nplc, spec.autozero)
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

    def _pulse_instruments(self) -> list[str]:
        """The SMU and the matrix a pulse programmer talks to."""
        prog = self.station.conductances
        return [parse_ref(prog.smu)[0], prog.matrix]

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

    # --- the Crossbar interface ----------------------------------------------------------
    def __enter__(self) -> LabCrossbar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
                if not name.startswith("G"):  # no bias sources: every node gets 0 A, whatever is asked
                    if np.any(phys != 0.0):
                        log.warning("program: %s: a memristive crossbar has no bias sources; not written", name)
                        failed[name] = int(np.count_nonzero(phys))
                    achieved[name] = torch.zeros_like(value)
                    continue
                rep = self._unretried(self._pulse_instruments(),  # pulses are not idempotent: not `_call`
                                      lambda n=int(name[1:]), p=phys: self.programmer.program_block(n, p))
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
                arr = self._unretried(self._pulse_instruments(),
                                      lambda n=int(name[1:]), s=shape: self.programmer.read_block(n, s))
            else:  # no bias sources: 0 A
                out[name] = torch.zeros(shape, dtype=dtype)
                continue
            out[name] = torch.as_tensor(np.asarray(arr) / unit, dtype=dtype)
        return out

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

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.safe_state()
        finally:
            self._close_sessions()
            self._restore_handlers()

