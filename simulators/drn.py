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
    reference DRN's fixed count instead (4 for drn-1h).
    """

    def __init__(
        self,
        topology: Topology,
        *,
        tol: float = 1e-6,
        max_iter: int = 100,
        fixed_iterations: int | None = None,
        diode: ShockleyDiode | None = None,
    ) -> None:
        self.topology = topology
        self.diode = diode
        self.tol = tol
        self.max_iter = max_iter
        self.fixed_iterations = fixed_iterations
        self._cap_warned = False

    def __repr__(self) -> str:
        mode = f"fixed_iterations={self.fixed_iterations}" if self.fixed_iterations else f"tol={self.tol:g}"
        diode = f", diode={self.diode!r}" if self.diode is not None else ""
        return f"DRNSolver(layers={self.topology.layers}, {mode}, max_iter={self.max_iter}{diode})"

    @staticmethod
    def denominators(g: list[Tensor]) -> list[Tensor]:
        """Total conductance at each node of each free layer (without the nudge)."""
        dens = []
        for l in range(len(g)):
            den = g[l].sum(dim=0)
            if l + 1 < len(g):
                den = den + g[l + 1].sum(dim=1)
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
    ) -> Equilibrium:
        """Relax to equilibrium given `xg = x @ G1` and the per-node conductance sums."""
        depth = len(g)
        batch = xg.shape[0]
        states = [s.clone() for s in init] if init is not None else [
            xg.new_zeros(batch, n) for n in self.topology.layers[1:]
        ]
        out_den = dens[-1]
        out_drive = b[-1]
        if nudge is not None and nudge.beta != 0.0:
            out_den = out_den + nudge.beta
            out_drive = out_drive + nudge.beta * nudge.target.to(xg)
        inv_dens = [_safe_reciprocal(d) for d in dens[:-1]] + [_safe_reciprocal(out_den)]
        groups = [range(0, depth, 2), range(1, depth, 2)]  # layers 1, 3, ... then 2, 4, ...
        n_iter = self.fixed_iterations or self.max_iter
        check = self.fixed_iterations is None
        residual = float("nan")
        converged = not check
        it = 0
        for it in range(1, n_iter + 1):  # noqa: B007 - `it` is reported below
            delta = 0.0
            for group in groups:
                for l in group:
                    new = self._layer_update(l, xg, g, states, b, out_drive)
                    if self.diode is not None and l < depth - 1:
                        new = self.diode.node_voltages(new, dens[l])
                    else:
                        new.mul_(inv_dens[l])
                    if l < depth - 1 and self.diode is None:
                        half = new.shape[1] // 2
                        new[:, :half].clamp_(min=0.0)
                        new[:, half:].clamp_(max=0.0)
                    if check:
                        delta = max(delta, (new - states[l]).abs().max().item())
                    states[l] = new
            if check:
                residual = delta
                if delta <= self._tolerance(states):
                    converged = True
                    break
        if check and not converged and not self._cap_warned:
            log.warning(
                "DRN solver hit its iteration cap (%d) with residual %.3g V", self.max_iter, residual
            )
            self._cap_warned = True
        return Equilibrium(states=states, iterations=it, converged=converged, residual=residual)

    def _layer_update(
        self, l: int, xg: Tensor, g: list[Tensor], states: list[Tensor], b: list[Tensor], out_drive: Tensor
    ) -> Tensor:
        """Current pushed into layer l+1 by its neighbours and its bias (before dividing)."""
        depth = len(g)
        drive = out_drive if l == depth - 1 else b[l]
        total = xg + drive if l == 0 else torch.addmm(drive, states[l - 1], g[l])
        if l + 1 < depth:
            total = torch.addmm(total, states[l + 1], g[l + 1].T)
        return total

    def _tolerance(self, states: list[Tensor]) -> float:
        dtype = states[0].dtype
        if dtype == torch.float64:
            return self.tol
        scale = max(s.abs().max().item() for s in states)
        return max(self.tol, 8.0 * torch.finfo(dtype).eps * scale)


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
