"""`PackedTwin`: T twins of one network shape solved in lockstep, for the trials of a sweep.

A sweep's trials differ in seed, read noise and dataset but share the network
shape and the schedule, so one process can step T of them at once: conductances
`(T, n_pre, n_post)`, inputs `(T, B, n_in)`, one batched product where T solo
twins would each issue their own dozens of small operations.  Each trial keeps
what makes it itself: its own generator and read-noise chain (built exactly as
its `TwinCrossbar` would build them) and its own solver exit (a trial that has
converged is frozen while the others sweep on), so trial t's conductances equal
its solo run's bit for bit (tests/sweeps/test_packed.py).

Only the twin's fast path packs: no device models, ideal diodes, row-major
blocks (`crossbar.layout: row`; a batched column-major product is not the solo
one's bits), and the same solver and clock settings in every trial (`pack_key`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hil.interface import Measurement, Nudge, ProgramReport, Topology
from hil.simulators.blocks import adopt_or_copy, outside_range
from hil.simulators.drn import DRNSolver, Equilibrium, reciprocals
from hil.simulators.twin import TwinConfig, TwinCrossbar

SHARED = ("dtype", "device", "tol_v", "max_iter", "fixed_iterations", "check_every", "sample_period_s",
          "program_time_s")


def pack_key(xbar: TwinCrossbar) -> tuple | None:
    """What trials must share to be packed together; None when this twin cannot be packed."""
    if xbar.devices is not None or xbar.solver.diode is not None or xbar.config.layout == "column":
        return None
    return tuple(getattr(xbar.config, k) for k in SHARED)


class PackedTwin:
    """T ideal twins of one topology: parameters with a leading trial dimension, each trial its own noise."""

    def __init__(self, topology: Topology, twins: list[TwinCrossbar]) -> None:
        keys = {pack_key(t) for t in twins}
        if None in keys or len(keys) != 1:
            raise ValueError("PackedTwin: every twin needs the fast path (no devices, ideal diodes) and the same "
                             f"{', '.join(SHARED)}")
        self.topology = topology
        self.trials = len(twins)
        self.config: TwinConfig = twins[0].config
        self.device, self.dtype = twins[0].device, twins[0].dtype
        self.solver: DRNSolver = twins[0].solver
        self.reads = [t.read for t in twins]
        self.read_sigma_v = [t.read_sigma_v for t in twins]  # per trial, for the EP signal diagnostics
        self.explicit = [t.config.read_path == "explicit" or not t.read.is_gaussian for t in twins]
        self.generators = [t.generator for t in twins]
        self.clock_s = 0.0
        self._g = {name: torch.stack([t._g[name] for t in twins]) for name in topology.parameter_shapes()}
        self._dens: list[Tensor] | None = None
        self._inv_dens: list[Tensor] = []
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_specs(cls, topology: Topology, specs: list[dict[str, Any]], seeds: list[int], source: str) -> PackedTwin:
        return cls(topology, [TwinCrossbar.from_spec(topology, s, seed=n, source=source) for s, n in zip(
            specs, seeds, strict=True)])

    def __repr__(self) -> str:
        return f"PackedTwin(trials={self.trials}, layers={self.topology.layers}, solver={self.solver!r})"

    def program(self, g: dict[str, Tensor], *, verify: bool = True) -> ProgramReport:
        """As `TwinCrossbar.program`, on `(T, ...)` tensors: clipped counts are summed over the trials."""
        shapes = self.topology.parameter_shapes()
        for name, value in g.items():
            if name not in shapes or tuple(value.shape) != (self.trials, *shapes[name]):
                raise ValueError(f"{name}: expected shape {(self.trials, *shapes.get(name, ()))}")
        self.clock_s += self.config.program_time_s
        achieved: dict[str, Tensor] = {}
        clipped: dict[str, int] = {}
        lo, hi = self.topology.g_min, self.topology.g_max
        for name, value in g.items():
            dst = self._g[name]
            if name.startswith("G") and outside_range(value, lo, hi):
                clipped[name] = int(((value < lo) | (value > hi)).sum().item())
                torch.clamp(value.to(dst), lo, hi, out=dst)
                achieved[name] = dst.clone()
                continue
            adopt_or_copy(self._g, name, value)
            achieved[name] = value
        self._dens = None
        self._cache.clear()
        return ProgramReport(requested=g, achieved=achieved, writes=len(g), clipped=clipped)

    def read_conductances(self) -> dict[str, Tensor]:
        return {name: t.clone() for name, t in self._g.items()}

    def trial_conductances(self, t: int) -> dict[str, Tensor]:
        """Trial t's parameters, shaped as its solo twin's."""
        return {name: v[t].clone() for name, v in self._g.items()}

    def measure(self, inputs: Tensor, *, nudge: Nudge | None = None, n_samples: int = 1) -> Measurement:
        """Relax every trial, then read each with its own chain and generator; voltages are `(T, B, n)`.

        `info["iterations"]` is the mean over trials of their sweeps.
        """
        if inputs.ndim != 3 or inputs.shape[0] != self.trials or inputs.shape[2] != self.topology.n_in:
            raise ValueError(f"inputs must have shape ({self.trials}, B, {self.topology.n_in}), "
                             f"got {tuple(inputs.shape)}")
        eq, iterations = self._equilibrium(inputs, nudge)
        times = self.clock_s + self.config.sample_period_s * torch.arange(n_samples, dtype=torch.float64)
        self.clock_s += self.config.sample_period_s * n_samples
        means, stds = [], []
        for layer, v in enumerate(eq.states, start=1):
            if all(r.is_noiseless for r in self.reads):
                means.append(v)
                stds.append(torch.zeros_like(v))
                continue
            per_trial = [self._read(t, v[t], n_samples, times, layer) for t in range(self.trials)]
            means.append(torch.stack([m for m, _ in per_trial]))
            stds.append(torch.stack([s for _, s in per_trial]))
        info = {"iterations": sum(iterations) / len(iterations), "converged": float(eq.converged)}
        return Measurement(means, stds, n_samples, times, None, info)

    def _read(self, t: int, v: Tensor, n: int, times: Tensor, layer: int) -> tuple[Tensor, Tensor]:
        """Trial t's reading of one layer, exactly as `TwinCrossbar.measure` draws it."""
        read, gen = self.reads[t], self.generators[t]
        if read.is_noiseless:
            return v, torch.zeros_like(v)
        if self.explicit[t]:
            reads = read.samples(v, n, times, gen, key=f"layer{layer}")
            return reads.mean(dim=0), reads.std(dim=0) if n > 1 else torch.zeros_like(v)
        return read.exact_mean(v, n, gen)

    def _equilibrium(self, inputs: Tensor, nudge: Nudge | None) -> tuple[Equilibrium, list[int]]:
        """Solve all trials, reusing `x @ G1` and the free states when the same input batch comes back."""
        if self._dens is None:
            self._dens = [d.unsqueeze(-2) for d in DRNSolver.denominators(self._blocks())]
            self._inv_dens = reciprocals(self._dens)
        cache = self._cache
        if not (cache.get("inputs") is inputs and cache.get("version") == inputs._version):
            x = inputs.to(device=self.device, dtype=self.dtype)
            cache.clear()
            cache.update(inputs=inputs, version=inputs._version, xg=torch.bmm(x, self._g["G1"]))
        biases = [self._g[f"b{l}"].unsqueeze(-2) for l in range(1, self.topology.depth + 1)]
        eq, iterations = self.solver.solve_packed(cache["xg"], self._blocks(), biases, self._dens, nudge=nudge,
                                                  init=cache.get("free"), inv_dens=self._inv_dens)
        if nudge is None or nudge.beta == 0.0:
            cache["free"] = eq.states
        return eq, iterations

    def _blocks(self) -> list[Tensor]:
        return [self._g[f"G{l}"] for l in range(1, self.topology.depth + 1)]

    def safe_state(self) -> None:
        """Nothing to switch off on a twin."""

    def close(self) -> None:
        self._cache.clear()

    def __enter__(self) -> PackedTwin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
