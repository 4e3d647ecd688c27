"""`TwinCrossbar`: the software twin of a resistive board behind the `Crossbar` seam.

It is assembled from injected parts (solver, read-noise chain, device array)
that share no global state; every random draw uses the twin's own seeded
generator, so a run with the same seed and config is bit-for-bit repeatable.

With no device models, an ideal diode and white (or no) read noise, the twin
takes the fast path it always had: no per-batch work is added for the models
of `simulators/devices.py`, `simulators/noise.py` beyond a few attribute checks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, field_validator
from torch import Tensor

from hil.config import PositiveInt, Seed, Strict, validate_section
from hil.errors import ConfigError
from hil.interface import Measurement, Nudge, ProgramReport, Topology
from hil.simulators.blocks import adopt_or_copy, column_major, input_drive, outside_range
from hil.simulators.calibration import load_calibration
from hil.simulators.devices import DeviceArray, DeviceModel, VerifyPolicy, check_unique
from hil.simulators.drn import DRNSolver, ShockleyDiode, reciprocals
from hil.simulators.noise import GaussianRead, ReadChain, ReadNoise


class TwinConfig(Strict):
    """The `crossbar:` section of a config when `kind: twin`."""

    kind: Literal["twin"] = "twin"
    sigma: NonNegativeFloat = Field(0.0, description="white read noise per sample (V), the paper's sigma")
    read_noise: list[ReadNoise] = Field(default_factory=list, description="further read-noise models")
    read_path: Literal["exact", "explicit"] = Field(
        "exact", description="exact: draw the N-sample mean as N(V, sigma^2/N); explicit: draw N samples"
    )
    dtype: Literal["float32", "float64"] = "float32"
    layout: Literal["row", "column"] = Field(
        "row", description="how each conductance block is held: row (n_pre rows, the reference bits) or column "
        "(n_post rows: x @ G1, the EP update and the column sums take faster BLAS paths at small batches; "
        "other float32 roundings; trials run unpacked)"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tol_v: PositiveFloat = Field(1e-6, description="solver tolerance, max |dV| per sweep (V)")
    max_iter: PositiveInt = Field(200, description="solver iteration cap (reported when hit)")
    fixed_iterations: PositiveInt | None = Field(None, description="fixed sweep count instead of tol_v")
    check_every: PositiveInt = Field(
        1, description="sweeps between two tolerance checks (each reads the residual back; >1 helps on a GPU)"
    )
    sample_period_s: PositiveFloat = Field(1e-6, description="time between two reads on the twin's clock")
    seed: Seed | None = Field(None, description="noise seed; defaults to the run seed")
    calibration: str | None = Field(
        None, description="calibration YAML (read_noise, devices); relative paths from the config's folder"
    )
    devices: list[DeviceModel] = Field(default_factory=list, description="device models of the conductances")
    verify: VerifyPolicy = Field(default_factory=VerifyPolicy, description="rewrites by program(verify=True)")
    ideal: bool = Field(False, description="turn every non-ideality off: read noise, devices, soft diodes")
    diode: Literal["ideal", "shockley"] = Field("ideal", description="hidden-node diodes: ideal clip or Shockley")
    diode_i_s_a: PositiveFloat = Field(1e-12, description="Shockley saturation current (A)")
    diode_v_t_v: PositiveFloat = Field(0.025852, description="Shockley thermal voltage kT/q (V)")
    diode_n: PositiveFloat = Field(1.0, description="Shockley ideality factor")
    program_time_s: NonNegativeFloat = Field(0.0, description="twin clock time one program() call takes (s)")

    @field_validator("devices")
    @classmethod
    def _one_per_kind(cls, models: list[Any]) -> list[Any]:
        return check_unique(models)


class TwinCrossbar:
    """An ideal-diode DRN with read noise; what CI and sweeps train instead of a board."""

    def __init__(self, topology: Topology, config: TwinConfig | None = None, *, seed: int = 0) -> None:
        self.topology = topology
        self.config = cfg = config or TwinConfig()
        self.device = _pick_device(cfg.device)
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        read_noise, device_models = list(cfg.read_noise), list(cfg.devices)
        if cfg.calibration is not None:
            cal = load_calibration(Path(cfg.calibration))
            read_noise = [*cal.read_noise, *read_noise]  # noise sources add up
            mine = {m.kind for m in device_models}  # the config's own device models win
            device_models = [m for m in cal.devices if m.kind not in mine] + device_models
        if cfg.ideal:
            read_noise, device_models = [], []
        diode = None
        if cfg.diode == "shockley" and not cfg.ideal:
            diode = ShockleyDiode.from_si(cfg.diode_i_s_a, cfg.diode_v_t_v, cfg.diode_n, topology)
        self.solver = DRNSolver(
            topology,
            tol=cfg.tol_v * topology.v_unit,
            max_iter=cfg.max_iter,
            fixed_iterations=cfg.fixed_iterations,
            check_every=cfg.check_every,
            diode=diode,
        )
        sigma = 0.0 if cfg.ideal else cfg.sigma
        self.read = ReadChain([GaussianRead(sigma_v=sigma), *read_noise])
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed if cfg.seed is not None else seed)
        self.clock_s = 0.0
        self._g = {
            name: self._held(name, torch.zeros(shape, dtype=self.dtype, device=self.device), copy=False)
            for name, shape in topology.parameter_shapes().items()
        }
        self.devices: DeviceArray | None = None
        if device_models:
            self.devices = DeviceArray(
                device_models, topology, self.generator, dtype=self.dtype, device=self.device, verify=cfg.verify
            )
            for name in topology.blocks:
                self._g[name] = self._held(name, self.devices.effective(name, self.clock_s))
        self._g_time = self.clock_s
        self._dens: list[Tensor] | None = None  # per-node conductance sums and their reciprocals, per program
        self._inv_dens: list[Tensor] = []
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_spec(cls, topology: Topology, spec: dict[str, Any], *, seed: int, source: str) -> TwinCrossbar:
        """Build from a config's `crossbar:` section; errors name `source` and the key.

        A relative `calibration:` path is taken from the folder of `source` when
        that is a file, else from the working directory.
        """
        return cls(topology, cls._config(spec, source), seed=seed)

    @staticmethod
    def _config(spec: dict[str, Any], source: str) -> TwinConfig:
        cfg = validate_section(TwinConfig, spec, source, prefix="crossbar")
        if cfg.calibration is not None and not Path(cfg.calibration).is_absolute():
            base = Path(source).parent if Path(source).is_file() else Path()
            cfg = cfg.model_copy(update={"calibration": str(base / cfg.calibration)})
        return cfg

    @classmethod
    def packed(cls, topology: Topology, specs: list[dict[str, Any]], seeds: list[int], source: str) -> Any:
        """A `PackedTwin` of these sections (one per trial), or None when one is off the fast path."""
        from hil.simulators.packed import PackedTwin, pack_key

        twins = [cls.from_spec(topology, s, seed=n, source=source) for s, n in zip(specs, seeds, strict=True)]
        keys = {pack_key(t) for t in twins}
        return PackedTwin(topology, twins) if len(keys) == 1 and None not in keys else None

    @classmethod
    def check_spec(cls, spec: dict[str, Any], source: str, topology: Topology | None = None) -> None:
        """Any topology fits a twin: the section and its calibration file are checked."""
        cfg = cls._config(spec, source)
        if cfg.calibration is not None:
            load_calibration(Path(cfg.calibration))

    def __repr__(self) -> str:
        return f"TwinCrossbar(layers={self.topology.layers}, {self.config!r}, solver={self.solver!r})"

    def __enter__(self) -> TwinCrossbar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def read_sigma_v(self) -> float:
        """Std of one read as configured (every additive read-noise model); EP diagnostics use it when N = 1."""
        dt = self.config.sample_period_s
        return math.sqrt(sum(m.mean_variance(1, dt) for m in self.read.models if hasattr(m, "mean_variance")))

    def _blocks(self) -> list[Tensor]:
        return [self._g[f"G{l}"] for l in range(1, self.topology.depth + 1)]

    def _biases(self) -> list[Tensor]:
        return [self._g[f"b{l}"] for l in range(1, self.topology.depth + 1)]

    def program(self, g: dict[str, Tensor], *, verify: bool = True) -> ProgramReport:
        """Store new conductances and biases; blocks outside [g_min, g_max] are clipped and counted.

        With device models the blocks go through `DeviceArray.program` (per-cell
        range, levels, write noise, verify passes, stuck cells): `achieved` is
        what the cells hold, `clipped` counts requests outside a cell's range,
        `failed` cells left outside the verify tolerance (stuck ones included),
        `writes` the write passes over all tensors.
        """
        shapes = self.topology.parameter_shapes()
        for name, value in g.items():
            if name not in shapes:
                raise KeyError(f"{name!r} is not a parameter of this topology ({', '.join(shapes)})")
            if tuple(value.shape) != shapes[name]:
                raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {shapes[name]}")
        self.clock_s += self.config.program_time_s
        if self.devices is not None:
            return self._program_devices(g, verify)
        achieved: dict[str, Tensor] = {}
        clipped: dict[str, int] = {}
        for name, value in g.items():
            dst = self._g[name]
            if name.startswith("G") and outside_range(value, self.topology.g_min, self.topology.g_max):
                outside = (value < self.topology.g_min) | (value > self.topology.g_max)
                clipped[name] = int(outside.sum().item())
                torch.clamp(value.to(dst), self.topology.g_min, self.topology.g_max, out=dst)
                achieved[name] = dst.clone()
                continue
            held = adopt_or_copy(self._g, name, value)
            achieved[name] = value if held is value else held.clone()  # a copy: in the twin's layout
        self._dens = None
        self._cache.clear()
        return ProgramReport(requested=g, achieved=achieved, writes=len(g), clipped=clipped)

    def _held(self, name: str, t: Tensor, *, copy: bool = True) -> Tensor:
        """`t` in this twin's layout for `name` (`crossbar.layout`); a copy when `copy` or when it is not so held."""
        if self.config.layout == "column" and name in self.topology.blocks:
            return t.mT.clone(memory_format=torch.contiguous_format).mT if copy or not column_major(t) else t
        return t.clone() if copy else t

    def _program_devices(self, g: dict[str, Tensor], verify: bool) -> ProgramReport:
        assert self.devices is not None
        achieved: dict[str, Tensor] = {}
        clipped: dict[str, int] = {}
        failed: dict[str, int] = {}
        writes = 0
        for name, value in g.items():
            if name.startswith("G"):
                stored, n_clip, n_fail, passes = self.devices.program(name, value, self.clock_s, verify=verify)
                writes += passes
                if n_clip:
                    clipped[name] = n_clip
                if n_fail:
                    failed[name] = n_fail
                self._g[name] = self._held(name, self.devices.effective(name, self.clock_s))
                achieved[name] = stored.clone()
            else:
                self._g[name].copy_(value)
                achieved[name] = self._g[name].clone()
                writes += 1
        self._g_time = self.clock_s
        self._dens = None
        self._cache.clear()
        return ProgramReport(requested=g, achieved=achieved, writes=writes, clipped=clipped, failed=failed)

    def pulse(self, name: str, cells: Tensor, polarity: int, amplitude_v: float, n: int = 1) -> None:
        """Apply n programming pulses (polarity +1 SET, -1 RESET) to the cells of block `name` in the mask `cells`.

        Needs a `pulse` device model (`simulators.devices.PulseResponse`); see `SupportsPulses`.
        """
        if self.devices is None or name not in self.topology.blocks:
            raise ConfigError("crossbar.devices: pulse programming needs a 'pulse' device model and a block name")
        self.devices.pulse(name, cells, polarity, amplitude_v, n, self.clock_s)
        self._g[name] = self._held(name, self.devices.effective(name, self.clock_s))
        self._dens = None
        self._cache.clear()

    def _refresh_devices(self) -> None:
        """Conductances as the circuit sees them now (drift), before a solve; only with time-varying devices."""
        assert self.devices is not None
        if self.devices.drift is not None and self.clock_s != self._g_time:
            for name in self.topology.blocks:
                self._g[name] = self._held(name, self.devices.effective(name, self.clock_s), copy=False)
            self._g_time = self.clock_s
            self._dens = None
            self._cache.clear()

    def read_conductances(self) -> dict[str, Tensor]:
        """What the cells hold now (drift and read disturb included), and the biases."""
        if self.devices is not None and self.devices.time_varying:
            self._refresh_devices()
        return {name: t.clone() for name, t in self._g.items()}

    def measure(
        self,
        inputs: Tensor,
        *,
        nudge: Nudge | None = None,
        n_samples: int = 1,
        keep_samples: bool = False,
    ) -> Measurement:
        """Relax to equilibrium, then read every free node n_samples times."""
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if inputs.ndim != 2 or inputs.shape[1] != self.topology.n_in:
            raise ValueError(f"inputs must have shape (B, {self.topology.n_in}), got {tuple(inputs.shape)}")
        devices = self.devices if self.devices is not None and self.devices.time_varying else None
        if devices is not None:
            self._refresh_devices()
        eq = self._equilibrium(inputs, nudge)
        times = self.clock_s + self.config.sample_period_s * torch.arange(n_samples, dtype=torch.float64)
        self.clock_s += self.config.sample_period_s * n_samples
        means, stds, samples = [], [], [] if keep_samples else None
        explicit = keep_samples or self.config.read_path == "explicit" or not self.read.is_gaussian
        saturated_before = self.read.adc_saturated
        for layer, v in enumerate(eq.states, start=1):
            if self.read.is_noiseless and not keep_samples:
                means.append(v)
                stds.append(torch.zeros_like(v))
            elif explicit:
                reads = self.read.samples(v, n_samples, times, self.generator, key=f"layer{layer}")
                means.append(reads.mean(dim=0))
                stds.append(reads.std(dim=0) if n_samples > 1 else torch.zeros_like(v))
                if samples is not None:
                    samples.append(reads)
            else:
                mean, std = self.read.exact_mean(v, n_samples, self.generator)
                means.append(mean)
                stds.append(std)
        info = {"iterations": float(eq.iterations), "converged": float(eq.converged), "residual_v": eq.residual}
        if explicit and self.read.adc_saturated != saturated_before:
            info["adc_saturated"] = float(self.read.adc_saturated - saturated_before)  # samples clipped by the ADC
        if devices is not None and devices.disturb is not None:
            devices.apply_reads(n_samples * inputs.shape[0])
            for name in self.topology.blocks:
                self._g[name] = self._held(name, devices.effective(name, self.clock_s), copy=False)
            self._g_time = self.clock_s
            self._dens = None
            self._cache.clear()
        return Measurement(means, stds, n_samples, times, samples, info)

    def _equilibrium(self, inputs: Tensor, nudge: Nudge | None):
        """Solve, reusing `x @ G1` and the free state when the same input batch comes back."""
        if self._dens is None:
            self._dens = DRNSolver.denominators(self._blocks())
            self._inv_dens = reciprocals(self._dens)
        cache = self._cache
        same_batch = cache.get("inputs") is inputs and cache.get("version") == inputs._version
        if not same_batch:
            x = inputs.to(device=self.device, dtype=self.dtype)
            cache.clear()
            cache.update(inputs=inputs, version=inputs._version, xg=input_drive(x, self._g["G1"]))
        eq = self.solver.solve(
            cache["xg"], self._blocks(), self._biases(), self._dens, nudge=nudge, init=cache.get("free"),
            inv_dens=self._inv_dens,
        )
        if nudge is None or nudge.beta == 0.0:
            cache["free"] = eq.states
        return eq

    def safe_state(self) -> None:
        """Nothing to switch off on a twin."""

    def close(self) -> None:
        self._cache.clear()

    def state_dict(self) -> dict[str, Any]:
        """Generator, clock, the read chain's time-correlated state and, with device models, every cell's state."""
        state: dict[str, Any] = {"generator": self.generator.get_state(), "clock_s": self.clock_s}
        if self.read.state or self.read.adc_saturated:
            state["read"] = self.read.state_dict()
        if self.devices is not None:
            state["devices"] = self.devices.state_dict()
            state["g"] = {name: t.detach().cpu().clone() for name, t in self._g.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.clock_s = float(state["clock_s"])
        self.read.load_state_dict(state.get("read", {}))
        if self.devices is not None and "devices" in state:
            self.devices.load_state_dict(state["devices"])
            for name, t in state["g"].items():
                self._g[name] = self._held(name, t.to(device=self.device, dtype=self.dtype))
            self._g_time = self.clock_s
        self._dens = None
        self._cache.clear()


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("crossbar.device: 'cuda' was asked for but torch sees no CUDA device (use auto or cpu)")
    return torch.device(name)

