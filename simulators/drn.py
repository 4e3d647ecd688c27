"""Equilibrium of a deep resistive network (DRN) by exact block coordinate descent.

The energy (power dissipated, DESIGN.md "The network and its energy") is a sum
of quadratic terms that couple only neighbouring layers, so the free layers
split into two groups, odd and even, each of whose exact minimiser given the
other is a closed form: a conductance-weighted mean of the neighbours plus the
bias currents, clipped by the diodes.  Alternating the two groups decreases the
energy monotonically and converges to the unique minimum when every node is
connected.  `x @ G1` is the only large product and is computed once per input
batch by the caller (`TwinCrossbar` caches it across EP phases).

With `diode=ShockleyDiode(...)` the clip becomes a Shockley diode to ground:
each node's exact minimiser is then the root of one increasing convex scalar
equation, found by Newton per node inside the same block coordinate descent
(the diode adds a convex co-content term, so the energy stays convex).
`simulators/spice.py` checks this path against ngspice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from hil.interface import Nudge, Topology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShockleyDiode:
    """A Shockley diode from each hidden node to ground, in the network's units.

    `i_s` is the saturation current in `g_unit * v_unit` amperes and `n_vt` the
    ideality factor times the thermal voltage in `v_unit` volts.  On the `>= 0`
    half of a layer the diode points from ground to the node (it conducts when
    the node goes negative), on the `<= 0` half from the node to ground: the
    ideal diodes' clip, made soft.  `from_si` converts from amperes and volts.
    """

    i_s: float
    n_vt: float
    max_newton: int = 100

    @classmethod
    def from_si(cls, i_s_a: float, v_t_v: float, n: float, topology: Topology) -> ShockleyDiode:
        return cls(i_s=i_s_a / (topology.g_unit * topology.v_unit), n_vt=n * v_t_v / topology.v_unit)

    def node_voltages(self, total: Tensor, den: Tensor) -> Tensor:
        """Exact node minimiser with a diode: solve `den v = total + I_diode(v)` per node by Newton.

        With `w` the diode's forward voltage (`-v` on the `>= 0` half, `v` on the
        `<= 0` half) and `c` the matching sign of `total`, the node equation is
        `F(w) = den w + i_s (exp(w / n_vt) - 1) - c = 0`, F increasing and convex.
        Newton started where `F >= 0` decreases monotonically to the root, so it
        needs no damping: start at `(c + i_s) / den` (where `F = i_s exp(.) > 0`),
        or for `c >= 0` at the smaller `n_vt ln(1 + c / i_s)` (where `F = den w >= 0`).
        """
        n = total.shape[-1]
        sign = torch.ones(n, dtype=total.dtype, device=total.device)
        sign[n // 2 :] = -1.0
        c = -sign * total
        d = den.clamp_min(torch.finfo(den.dtype).tiny)
        w_lin = (c + self.i_s) / d
        w_diode = self.n_vt * torch.log1p(c.clamp_min(0.0) / self.i_s)
        w = torch.where(c >= 0, torch.minimum(w_lin, w_diode), w_lin)
        eps = 4.0 * torch.finfo(total.dtype).eps
        for _ in range(self.max_newton):
            e = torch.exp(w / self.n_vt)
            step = (d * w + self.i_s * (e - 1.0) - c) / (d + (self.i_s / self.n_vt) * e)
            w = w - step
            if (step.abs() <= eps * (w.abs() + self.n_vt)).all():
                break
        return -sign * w


@dataclass
class Equilibrium:
    """Free-layer voltages at equilibrium and how the solver got there."""

    states: list[Tensor]
    iterations: int
    converged: bool
    residual: float


class DRNSolver:
    """Minimise the DRN energy for given conductances, biases, inputs and nudge.

    `tol` is in volts (max |dV| over one sweep of both groups).  In float32 the
    fixed point is only representable to a few ULPs of the largest node voltage,
    so the tolerance is floored there; `fixed_iterations` reproduces the
    reference DRN's fixed count instead (4 for drn-1h) and never reads a value
    back from the device.  With a tolerance, the residual is read back (one
    host sync) every `check_every` sweeps only: 1 stops at the first converged
    sweep, a larger k saves syncs (they stall a GPU) for up to k - 1 extra sweeps.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        tol: float = 1e-6,
        max_iter: int = 100,
        fixed_iterations: int | None = None,
        check_every: int = 1,
        diode: ShockleyDiode | None = None,
    ) -> None:
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every}")
        self.topology = topology
        self.diode = diode
        self.tol = tol
        self.max_iter = max_iter
        self.fixed_iterations = fixed_iterations
        self.check_every = check_every
        self._cap_warned = False
        self._clip_bounds: dict[tuple, tuple[Tensor, Tensor]] = {}  # per layer width: the diodes' clamp bounds

    def __repr__(self) -> str:
        mode = f"fixed_iterations={self.fixed_iterations}" if self.fixed_iterations else f"tol={self.tol:g}"
        every = f", check_every={self.check_every}" if self.check_every > 1 else ""
        diode = f", diode={self.diode!r}" if self.diode is not None else ""
        return f"DRNSolver(layers={self.topology.layers}, {mode}{every}, max_iter={self.max_iter}{diode})"

    @staticmethod
    def denominators(g: list[Tensor]) -> list[Tensor]:
        """Total conductance at each node of each free layer (without the nudge)."""
        dens = []
        for l in range(len(g)):
            den = g[l].sum(dim=-2)
            if l + 1 < len(g):
                den = den + g[l + 1].sum(dim=-1)
            dens.append(den)
        return dens

    def solve(
        self,
        xg: Tensor,
        g: list[Tensor],
        b: list[Tensor],
        dens: list[Tensor],
        *,
        nudge: Nudge | None = None,
        init: list[Tensor] | None = None,
        inv_dens: list[Tensor] | None = None,
    ) -> Equilibrium:
        """Relax to equilibrium given `xg = x @ G1` and the per-node conductance sums.

        Shapes may carry leading trial dimensions (`xg (T, B, n_1)`, `g[l] (T, n_l, n_l+1)`,
        `b[l]`, `dens[l] (T, 1, n)`, a nudge target `(T, B, n_out)`): the packed twin
        solves T networks at once; then a sweep is converged when every trial is.
        `inv_dens` (`reciprocals(dens)`, which a caller can keep while the conductances
        do not change) saves recomputing them in every phase.
        """
        depth = len(g)
        states = list(init) if init is not None else [  # never written in place: no copy needed
            xg.new_zeros(*xg.shape[:-1], n) for n in self.topology.layers[1:]
        ]
        out_drive, inv_dens = self._output_terms(dens, b, nudge, xg, inv_dens)
        xg = xg + (out_drive if depth == 1 else b[0])  # layer 1's constant drive, added once per solve
        groups = [range(0, depth, 2), range(1, depth, 2)]  # layers 1, 3, ... then 2, 4, ...
        n_iter = self.fixed_iterations or self.max_iter
        check = self.fixed_iterations is None
        residual = float("nan")
        converged = not check
        it = 0
        for it in range(1, n_iter + 1):  # noqa: B007 - `it` is reported below
            checking = check and (it % self.check_every == 0 or it == n_iter)
            deltas: list[Tensor] = []
            for group in groups:
                for l in group:
                    new = self._layer_update(l, xg, g, states, b, out_drive)
                    if self.diode is not None and l < depth - 1:
                        new = self.diode.node_voltages(new, dens[l])
                    else:
                        new.mul_(inv_dens[l])
                    if l < depth - 1 and self.diode is None:
                        self._diode_clip_(new)
                    if checking:
                        deltas.extend(torch.aminmax(new - states[l]))  # min and max of dV: one reduction
                    states[l] = new
            if checking:
                residual, limit = self._residual_and_limit(deltas, states)  # the one host sync
                if residual <= limit:
                    converged = True
                    break
        if check and not converged and not self._cap_warned:
            log.warning(
                "DRN solver hit its iteration cap (%d) with residual %.3g V", self.max_iter, residual
            )
            self._cap_warned = True
        return Equilibrium(states=states, iterations=it, converged=converged, residual=residual)

    def solve_packed(
        self,
        xg: Tensor,
        g: list[Tensor],
        b: list[Tensor],
        dens: list[Tensor],
        *,
        nudge: Nudge | None = None,
        init: list[Tensor] | None = None,
        inv_dens: list[Tensor] | None = None,
    ) -> tuple[Equilibrium, list[int]]:
        """`solve` for T trials at once (`xg (T, B, n_1)`, `g[l] (T, n_l, n_l+1)`, `b`, `dens (T, 1, n)`).

        Each trial stops where it would stop alone: once its own residual meets its
        own tolerance it is frozen (its states no longer change) while the others
        sweep on, so every trial's states equal its solo solve's bit for bit.
        Returns the states, converged when every trial is, and each trial's sweeps.
        """
        depth = len(g)
        trials = xg.shape[0]
        states = list(init) if init is not None else [xg.new_zeros(*xg.shape[:-1], n) for n in self.topology.layers[1:]]
        out_drive, inv_dens = self._output_terms(dens, b, nudge, xg, inv_dens)
        xg = xg + (out_drive if depth == 1 else b[0])
        groups = [range(0, depth, 2), range(1, depth, 2)]
        n_iter = self.fixed_iterations or self.max_iter
        check = self.fixed_iterations is None
        done = [not check] * trials
        sweeps = [n_iter] * trials
        frozen: Tensor | None = None  # (T, 1, 1): trials already converged
        for it in range(1, n_iter + 1):
            checking = check and (it % self.check_every == 0 or it == n_iter)
            deltas: list[Tensor] = []
            for group in groups:
                for l in group:
                    new = self._layer_update(l, xg, g, states, b, out_drive)
                    new.mul_(inv_dens[l])
                    if l < depth - 1:
                        self._diode_clip_(new)
                    if frozen is not None:
                        new = torch.where(frozen, states[l], new)
                    if checking:
                        deltas.append((new - states[l]).abs_().amax(dim=(-2, -1)))
                    states[l] = new
            if checking:
                for t, (residual, limit) in enumerate(self._packed_residuals(deltas, states)):
                    if not done[t] and residual <= limit:
                        done[t], sweeps[t] = True, it
                if all(done):
                    break
                frozen = torch.tensor(done, device=xg.device).view(trials, 1, 1)
        converged = all(done)
        if not converged and not self._cap_warned:
            log.warning("DRN solver hit its iteration cap (%d) in %d of %d packed trials",
                        self.max_iter, done.count(False), trials)
            self._cap_warned = True
        return Equilibrium(states=states, iterations=max(sweeps), converged=converged, residual=float("nan")), sweeps

    def _diode_clip_(self, v: Tensor) -> None:
        """The ideal diodes, in place: the first half of a layer kept >= 0, the second <= 0; one op."""
        key = (v.shape[-1], v.dtype, v.device)
        if key not in self._clip_bounds:
            n, half = v.shape[-1], v.shape[-1] // 2
            lo = v.new_zeros(n)
            hi = v.new_zeros(n)
            lo[half:], hi[:half] = -torch.inf, torch.inf
            self._clip_bounds[key] = (lo, hi)
        lo, hi = self._clip_bounds[key]
        torch.clamp(v, lo, hi, out=v)

    def _packed_residuals(self, deltas: list[Tensor], states: list[Tensor]) -> list[tuple[float, float]]:
        """Per trial, `_residual_and_limit`'s pair, all read back in one host sync."""
        float64 = states[0].dtype == torch.float64
        parts = deltas if float64 else [*deltas, *(s.abs().amax(dim=(-2, -1)) for s in states)]
        values = torch.stack(parts).T.tolist()  # (T, parts)
        eps8 = 8.0 * torch.finfo(states[0].dtype).eps
        out = []
        for row in values:
            residual = max(0.0, *row[: len(deltas)])
            out.append((residual, self.tol if float64 else max(self.tol, eps8 * max(row[len(deltas):]))))
        return out

    def _layer_update(
        self, l: int, xg: Tensor, g: list[Tensor], states: list[Tensor], b: list[Tensor], out_drive: Tensor
    ) -> Tensor:
        """Current pushed into layer l+1 by its neighbours and its bias (before dividing), a new tensor.

        `xg` already holds layer 1's bias (or, without a hidden layer, the output's drive).
        """
        depth = len(g)
        if l + 1 == depth == 1:  # no hidden layer: the output's whole drive is in `xg`, returned as a new tensor
            return xg.clone()
        drive = out_drive if l == depth - 1 else b[l]
        if xg.ndim == 3:  # packed trials: batched products
            total = xg if l == 0 else torch.baddbmm(drive, states[l - 1], g[l])
            if l + 1 < depth:
                total = torch.baddbmm(total, states[l + 1], g[l + 1].transpose(1, 2))
            return total
        total = xg if l == 0 else torch.addmm(drive, states[l - 1], g[l])
        if l + 1 < depth:
            total = torch.addmm(total, states[l + 1], g[l + 1].T)
        return total

    def _output_terms(
        self, dens: list[Tensor], b: list[Tensor], nudge: Nudge | None, like: Tensor, inv_dens: list[Tensor] | None
    ) -> tuple[Tensor, list[Tensor]]:
        """The output layer's drive and every layer's 1/den, with the nudge's source and conductance added."""
        inv = inv_dens if inv_dens is not None else reciprocals(dens)
        if nudge is None or nudge.beta == 0.0:
            return b[-1], inv
        out_drive = b[-1] + nudge.beta * nudge.target.to(like)
        return out_drive, [*inv[:-1], _safe_reciprocal(dens[-1] + nudge.beta)]

    def _residual_and_limit(self, deltas: list[Tensor], states: list[Tensor]) -> tuple[float, float]:
        """Max |dV| of the sweep and the tolerance it is held to, read back together.

        `deltas` holds each layer's min and max of dV.  In float32 the tolerance is
        floored at 8 ULPs of the largest node voltage.  Every max |.| here is
        `max(-min, max)` of one `aminmax` (the same value as `vector_norm(ord=inf)`,
        NaN included, for a third of its cost).
        """
        parts = list(deltas)
        float64 = states[0].dtype == torch.float64
        if not float64:
            parts += [v for s in states for v in torch.aminmax(s)]
        values = torch.stack(parts).tolist()
        layer_max = [max(-lo, hi) for lo, hi in zip(values[::2], values[1::2], strict=True)]  # NaN stays NaN
        residual = max(0.0, *layer_max[: len(deltas) // 2])  # as a running max from 0 (a NaN sweep counts as 0)
        if float64:
            return residual, self.tol
        return residual, max(self.tol, 8.0 * torch.finfo(states[0].dtype).eps * max(layer_max[len(deltas) // 2 :]))


def reciprocals(dens: list[Tensor]) -> list[Tensor]:
    """1/den of every layer without the nudge: what `solve(inv_dens=)` takes."""
    return [_safe_reciprocal(d) for d in dens]


def _safe_reciprocal(den: Tensor) -> Tensor:
    """1/den, with 0 for a floating node (no conductance at all) instead of inf."""
    return torch.where(den > 0, 1.0 / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(den))


def energy(
    x: Tensor, g: list[Tensor], b: list[Tensor], states: list[Tensor], nudge: Nudge | None = None
) -> Tensor:
    """Energy of each example in the batch, shape (B,); for tests and diagnostics."""
    layers = [x, *states]
    total = x.new_zeros(x.shape[0])
    for l, gl in enumerate(g):
        u, v = layers[l], layers[l + 1]
        sq = (u * u) @ gl.sum(dim=1) + (v * v) @ gl.sum(dim=0) - 2.0 * ((u @ gl) * v).sum(dim=1)
        total = total + 0.5 * sq - states[l] @ b[l]
    if nudge is not None:
        total = total + 0.5 * nudge.beta * ((states[-1] - nudge.target.to(x)) ** 2).sum(dim=1)
    return total
