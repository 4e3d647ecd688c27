"""The EP controller: from measured voltages to new conductances, on any `Crossbar`.

The gradient estimate of equilibrium propagation is, for two nudges beta_1 < beta_2,

    grad = (dE/dtheta at s(beta_2) - dE/dtheta at s(beta_1)) / (beta_2 - beta_1)

with `dE/dG_ij = 1/2 (u_i - v_j)^2` for a block between layers u and v and
`dE/db = -s` for a bias (DESIGN.md, "EP through the interface").  Summed over
the batch, the block term is a few rank-B products, so one `addmm_` per block
(`hil.rank_update`) applies it in place: no `(B, n_in, n_h)` tensor and a single pass over G.
The controller sees `Measurement`s only: it cannot tell a twin from a board.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from hil.adaptive import AdaptiveReads, batch_reads
from hil.diagnostics import SignalMonitor
from hil.interface import Crossbar, Measurement, Nudge, ProgramReport, Topology
from hil.rank_update import rank_update_
from hil.readout import Readout


def initial_conductances(
    topology: Topology, gains: list[float], generator: torch.Generator, hidden_bias: float = 0.0
) -> dict[str, Tensor]:
    """Half-Kaiming uniform blocks clipped to the device range (about half at g_min), zero biases.

    This is the reference DRN's initialisation: U(-a, a) with a = gain / sqrt(n_pre).
    `hidden_bias` > 0 starts the hidden biases at +hidden_bias on the `>= 0` half and
    -hidden_bias on the `<= 0` half, so that every diode of a small network conducts at
    the start (a node clamped at 0 V gets no EP gradient and stays dead).
    """
    g: dict[str, Tensor] = {}
    for (name, (n_pre, n_post)), gain in zip(topology.blocks.items(), gains, strict=True):
        a = gain / math.sqrt(n_pre)
        block = (torch.rand(n_pre, n_post, generator=generator) * 2.0 - 1.0) * a
        g[name] = block.clamp_(topology.g_min, topology.g_max)
    for l, (name, n) in enumerate(topology.biases.items(), start=1):
        g[name] = torch.zeros(n)
        if l < topology.depth:
            g[name][: n // 2], g[name][n // 2 :] = hidden_bias, -hidden_bias
    return g


def ep_step_(
    params: dict[str, Tensor],
    x: Tensor,
    s1: list[Tensor],
    s2: list[Tensor],
    dbeta: float,
    eta_w: list[float],
    eta_b: list[float],
) -> None:
    """In place: `theta -= eta * grad` with grad the EP estimate from states s1 (beta_1) and s2 (beta_2).

    `dbeta = beta_2 - beta_1`.  With eta = -1 on zero tensors this writes the
    gradient estimate itself (see `ep_gradient`).  Tensors may carry a leading
    trial dimension (`x (T, B, n_in)`, `G (T, n_in, n_h)`): packed trials, each
    updated exactly as it would be alone.
    """
    batch = x.shape[-2]
    first = [x, *s1]
    second = [x, *s2]
    for l in range(1, len(s1) + 1):
        block = params[f"G{l}"]
        u1, u2, v1, v2 = first[l - 1], second[l - 1], first[l], second[l]
        dv = v2 - v1
        half_dv2 = -0.5 * (v2 * v2 - v1 * v1).sum(dim=-2, keepdim=True)
        ones_pre = u1.new_ones(*u1.shape[:-2], 1, u1.shape[-1])
        if u1 is u2:  # clamped inputs: the u^2 terms cancel, u1 v1 - u2 v2 = u (v1 - v2)
            left = torch.cat([u1, ones_pre], dim=-2)
            right = torch.cat([dv, half_dv2], dim=-2)
        else:
            half_du2 = -0.5 * (u2 * u2 - u1 * u1).sum(dim=-2, keepdim=True)
            left = torch.cat([u2, u1, half_du2, ones_pre], dim=-2)
            right = torch.cat([v2, -v1, torch.ones_like(half_dv2), half_dv2], dim=-2)
        alpha = eta_w[l - 1] / (batch * dbeta)
        rank_update_(block, left, right, alpha)
        params[f"b{l}"].add_(dv.sum(dim=-2), alpha=eta_b[l - 1] / (batch * dbeta))


def ep_gradient(x: Tensor, s1: list[Tensor], s2: list[Tensor], dbeta: float, topology: Topology) -> dict[str, Tensor]:
    """The EP gradient estimate itself (for tests and diagnostics)."""
    grads = {name: x.new_zeros(shape) for name, shape in topology.parameter_shapes().items()}
    ones = [-1.0] * topology.depth
    ep_step_(grads, x, s1, s2, dbeta, ones, ones)
    return grads


@dataclass
class BatchResult:
    correct: int
    loss: float
    iterations: float
    clipped: int
    n_samples: int = 1
    beta: float = 0.0
    reads: int = 0  # reads per node this batch took (N x phases x examples)
    snr: float | None = None  # worst hidden layer's update SNR, when reads are adaptive


class EPController:
    """Runs EP on a crossbar: phases, N-sample reads, update, clip, program, evaluate."""

    def __init__(
        self,
        crossbar: Crossbar,
        *,
        beta: float,
        centered: bool,
        n_samples: int,
        eta_w: list[float],
        eta_b: list[float],
        monitor: SignalMonitor | None = None,
        momentum: float = 0.0,
        readout: Readout | None = None,
        adaptive: AdaptiveReads | None = None,
    ) -> None:
        self.crossbar = crossbar
        self.readout = readout or Readout("one-hot", crossbar.topology.n_out)
        self.momentum = momentum  # heavy ball: v = mu v + grad, theta -= eta v (PyTorch SGD's convention)
        self.velocity: dict[str, Tensor] = {}  # the controller's state, checkpointed by the protocol
        self.monitor = monitor  # per-layer EP signal and noise (hil.diagnostics); reads measurements only
        self.adaptive = adaptive  # N and beta per batch from the measured update SNR (hil.adaptive)
        self.topology = crossbar.topology
        self.beta = beta
        self.centered = centered
        self.n_samples = n_samples
        self.eta_w = eta_w
        self.eta_b = eta_b
        self.params = crossbar.read_conductances()  # clones keep the crossbar's layout (simulators/blocks.py)
        self._like = self.params["G1"]

    def __repr__(self) -> str:
        return (
            f"EPController(beta={self.beta}, centered={self.centered}, n_samples={self.n_samples}, "
            f"eta_w={self.eta_w}, eta_b={self.eta_b}, adaptive={self.adaptive.cfg if self.adaptive else None})"
        )

    def program(self, g: dict[str, Tensor]) -> ProgramReport:
        """Program the crossbar and adopt what it achieved as the controller's copy."""
        report = self.crossbar.program(g, verify=True)
        for name, achieved in report.achieved.items():
            if achieved is not self.params.get(name):
                self.params[name] = achieved.to(self._like).clone()
        return report

    def step(self, x: Tensor, target: Tensor, labels: Tensor, lr_scale: float = 1.0) -> BatchResult:
        """One EP batch: free phase (prediction), nudged phase(s), update, program.

        With adaptive reads, N and beta come from `self.adaptive`, which then
        takes in this batch's two update reads to plan the next batch.
        """
        xbar = self.crossbar
        n, beta = (self.adaptive.n_samples, self.adaptive.beta) if self.adaptive else (self.n_samples, self.beta)
        free = xbar.measure(x, n_samples=n)
        if self.centered:
            s1 = xbar.measure(x, nudge=Nudge(-beta, target), n_samples=n)
            s2 = xbar.measure(x, nudge=Nudge(beta, target), n_samples=n)
            dbeta = 2.0 * beta
        else:
            s1 = free
            s2 = xbar.measure(x, nudge=Nudge(beta, target), n_samples=n)
            dbeta = beta
        snr = self.adaptive.observe(s1, s2, beta) if self.adaptive else None
        phases = (free, s2) if s1 is free else (free, s1, s2)
        xl = x.to(self._like)
        v1 = [v.to(self._like) for v in s1.voltages]
        v2 = [v.to(self._like) for v in s2.voltages]
        eta_w = [e * lr_scale for e in self.eta_w]
        eta_b = [e * lr_scale for e in self.eta_b]
        lo, hi = self.topology.g_min, self.topology.g_max
        hi = None if math.isinf(hi) else hi  # clamp_(min=) is the same clip, 3x faster when g_max is inf
        if self.momentum:
            self._momentum_step(xl, v1, v2, dbeta, eta_w, eta_b)
        else:
            ep_step_(self.params, xl, v1, v2, dbeta, eta_w, eta_b)
        for name in self.topology.blocks:
            self.params[name].clamp_(lo, hi)
        report = self.program(self.params)
        if self.monitor is not None:
            self.monitor.add(s1, s2)
        return BatchResult(
            correct=self._correct(free, labels),
            loss=_loss(free, target),
            iterations=sum(m.info.get("iterations", 0.0) for m in phases) / len(phases),
            clipped=report.n_clipped,
            n_samples=n,
            beta=beta,
            reads=batch_reads(n, self.centered, x.shape[0]),
            snr=snr,
        )

    def _momentum_step(self, x: Tensor, v1: list[Tensor], v2: list[Tensor], dbeta: float,
                       eta_w: list[float], eta_b: list[float]) -> None:
        """theta -= eta v with v = momentum v + grad; the gradient estimate is the one `ep_step_` applies."""
        if not self.velocity:
            self.velocity = {k: torch.zeros_like(v) for k, v in self.params.items()}
        grads = {k: torch.zeros_like(v) for k, v in self.params.items()}
        ones = [-1.0] * self.topology.depth
        ep_step_(grads, x, v1, v2, dbeta, ones, ones)
        for l in range(1, self.topology.depth + 1):
            for name, eta in ((f"G{l}", eta_w[l - 1]), (f"b{l}", eta_b[l - 1])):
                vel = self.velocity[name].mul_(self.momentum).add_(grads[name])
                self.params[name].add_(vel, alpha=-eta)

    def evaluate(self, batches: Iterable[tuple[Tensor, Tensor]], n_samples: int | None = None) -> tuple[int, float]:
        """Correct predictions and summed loss of the free phase over (inputs, labels) batches, via `measure()`."""
        correct, loss = 0, 0.0
        for xb, yb in batches:
            m = self.crossbar.measure(xb, n_samples=n_samples or self.n_samples)
            correct += self._correct(m, yb)
            loss += _loss(m, self.readout.target(yb, m.output.dtype)) * len(yb)
        return correct, loss

    def _correct(self, m: Measurement, labels: Tensor) -> int:
        return int((self.readout.predict(m.output).cpu() == labels.cpu()).sum().item())


def _loss(m: Measurement, target: Tensor) -> float:
    """Mean over the batch of 1/2 |y - t|^2, the cost that EP descends."""
    return float(0.5 * ((m.output - target.to(m.output)) ** 2).sum(dim=1).mean().item())
