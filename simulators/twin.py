"""`TwinCrossbar`: the software twin of a resistive board behind the `Crossbar` seam.

It is assembled from injected parts (solver, read-noise chain) that share no
global state; every random draw uses the twin's own seeded generator, so a
run with the same seed and config is bit-for-bit repeatable.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import Tensor

from hil.config import validate_section
from hil.errors import ConfigError
from hil.interface import Measurement, Nudge, ProgramReport, Topology
from hil.simulators.drn import DRNSolver
from hil.simulators.noise import GaussianRead, ReadChain, ReadNoise


class TwinConfig(BaseModel):
    """The `crossbar:` section of a config when `kind: twin`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["twin"] = "twin"
    sigma: NonNegativeFloat = Field(0.0, description="white read noise per sample (V), the paper's sigma")
    read_noise: list[ReadNoise] = Field(default_factory=list, description="further read-noise models")
    read_path: Literal["exact", "explicit"] = Field(
        "exact", description="exact: draw the N-sample mean as N(V, sigma^2/N); explicit: draw N samples"
    )
    dtype: Literal["float32", "float64"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tol_v: PositiveFloat = Field(1e-6, description="solver tolerance, max |dV| per sweep (V)")
    max_iter: PositiveInt = Field(200, description="solver iteration cap (reported when hit)")
    fixed_iterations: PositiveInt | None = Field(None, description="fixed sweep count instead of tol_v")
    sample_period_s: PositiveFloat = Field(1e-6, description="time between two reads on the twin's clock")
    seed: int | None = Field(None, description="noise seed; defaults to the run seed")


class TwinCrossbar:
    """An ideal-diode DRN with read noise; what CI and sweeps train instead of a board."""

    def __init__(self, topology: Topology, config: TwinConfig | None = None, *, seed: int = 0) -> None:
        self.topology = topology
        self.config = config or TwinConfig()
        self.device = _pick_device(self.config.device)
        self.dtype = torch.float64 if self.config.dtype == "float64" else torch.float32
        self.solver = DRNSolver(
            topology,
            tol=self.config.tol_v * topology.v_unit,
            max_iter=self.config.max_iter,
            fixed_iterations=self.config.fixed_iterations,
        )
        self.read = ReadChain([GaussianRead(sigma_v=self.config.sigma), *self.config.read_noise])
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.config.seed if self.config.seed is not None else seed)
        self.clock_s = 0.0
        self._g = {
            name: torch.zeros(shape, dtype=self.dtype, device=self.device)
            for name, shape in topology.parameter_shapes().items()
        }
        self._dens: list[Tensor] | None = None
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_spec(cls, topology: Topology, spec: dict[str, Any], *, seed: int, source: str) -> TwinCrossbar:
        """Build from a config's `crossbar:` section; errors name `source` and the key."""
        return cls(topology, validate_section(TwinConfig, spec, source, prefix="crossbar"), seed=seed)

    @staticmethod
    def check_spec(spec: dict[str, Any], source: str) -> None:
        validate_section(TwinConfig, spec, source, prefix="crossbar")

    def __repr__(self) -> str:
        return f"TwinCrossbar(layers={self.topology.layers}, {self.config!r}, solver={self.solver!r})"

    def __enter__(self) -> TwinCrossbar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _blocks(self) -> list[Tensor]:
        return [self._g[f"G{l}"] for l in range(1, self.topology.depth + 1)]

    def _biases(self) -> list[Tensor]:
        return [self._g[f"b{l}"] for l in range(1, self.topology.depth + 1)]

    def program(self, g: dict[str, Tensor], *, verify: bool = True) -> ProgramReport:
        """Store new conductances and biases; blocks outside [g_min, g_max] are clipped and counted."""
        shapes = self.topology.parameter_shapes()
        achieved: dict[str, Tensor] = {}
        clipped: dict[str, int] = {}
        for name, value in g.items():
            if name not in shapes:
                raise KeyError(f"{name!r} is not a parameter of this topology ({', '.join(shapes)})")
            if tuple(value.shape) != shapes[name]:
                raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {shapes[name]}")
            dst = self._g[name]
            if name.startswith("G"):
                lo, hi = torch.aminmax(value)
                if lo.item() < self.topology.g_min or hi.item() > self.topology.g_max:
                    outside = (value < self.topology.g_min) | (value > self.topology.g_max)
                    clipped[name] = int(outside.sum().item())
                    torch.clamp(value.to(dst), self.topology.g_min, self.topology.g_max, out=dst)
                    achieved[name] = dst.clone()
                    continue
            dst.copy_(value)
            achieved[name] = value
        self._dens = None
        self._cache.clear()
        return ProgramReport(requested=g, achieved=achieved, writes=len(g), clipped=clipped)

    def read_conductances(self) -> dict[str, Tensor]:
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
        eq = self._equilibrium(inputs, nudge)
        times = self.clock_s + self.config.sample_period_s * torch.arange(n_samples, dtype=torch.float64)
        self.clock_s += self.config.sample_period_s * n_samples
        means, stds, samples = [], [], [] if keep_samples else None
        explicit = keep_samples or self.config.read_path == "explicit" or not self.read.is_gaussian
        for v in eq.states:
            if self.read.is_noiseless and not keep_samples:
                means.append(v)
                stds.append(torch.zeros_like(v))
            elif explicit:
                reads = self.read.samples(v, n_samples, times, self.generator)
                means.append(reads.mean(dim=0))
                stds.append(reads.std(dim=0) if n_samples > 1 else torch.zeros_like(v))
                if samples is not None:
                    samples.append(reads)
            else:
                mean, std = self.read.exact_mean(v, n_samples, self.generator)
                means.append(mean)
                stds.append(std)
        info = {"iterations": float(eq.iterations), "converged": float(eq.converged), "residual_v": eq.residual}
        return Measurement(means, stds, n_samples, times, samples, info)

    def _equilibrium(self, inputs: Tensor, nudge: Nudge | None):
        """Solve, reusing `x @ G1` and the free state when the same input batch comes back."""
        if self._dens is None:
            self._dens = DRNSolver.denominators(self._blocks())
        cache = self._cache
        same_batch = cache.get("inputs") is inputs and cache.get("version") == inputs._version
        if not same_batch:
            x = inputs.to(device=self.device, dtype=self.dtype)
            cache.clear()
            cache.update(inputs=inputs, version=inputs._version, xg=x @ self._g["G1"])
        eq = self.solver.solve(
            cache["xg"], self._blocks(), self._biases(), self._dens, nudge=nudge, init=cache.get("free")
        )
        if nudge is None or nudge.beta == 0.0:
            cache["free"] = eq.states
        return eq

    def safe_state(self) -> None:
        """Nothing to switch off on a twin."""

    def close(self) -> None:
        self._cache.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "clock_s": self.clock_s}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.clock_s = float(state["clock_s"])
        self._cache.clear()


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("crossbar.device: 'cuda' was asked for but torch sees no CUDA device (use auto or cpu)")
    return torch.device(name)

