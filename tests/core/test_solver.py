"""The DRN equilibrium: bounds, KCL/KKT at every node, agreement with scipy, warm = cold starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from hil.interface import Nudge, Topology
from hil.simulators.drn import DRNSolver, energy

SHAPES = [(6, 4, 3), (10, 8, 2), (8, 6, 4, 3), (12, 6, 6, 4, 2)]


def random_network(layers, seed):
    gen = torch.Generator().manual_seed(seed)
    g = [torch.rand(a, b, generator=gen, dtype=torch.float64) for a, b in zip(layers[:-1], layers[1:])]
    b = [torch.randn(n, generator=gen, dtype=torch.float64) * 0.5 for n in layers[1:]]
    x = torch.randn(5, layers[0], generator=gen, dtype=torch.float64) * 3.0
    t = torch.rand(5, layers[-1], generator=gen, dtype=torch.float64)
    return g, b, x, t


def solve(layers, g, b, x, nudge=None, init=None, tol=1e-13):
    solver = DRNSolver(Topology(layers), tol=tol, max_iter=100_000)
    return solver.solve(x @ g[0], g, b, DRNSolver.denominators(g), nudge=nudge, init=init)


def energy_gradient(g, b, x, states, nudge):
    """dE/ds for every free node: the net current leaving it (KCL residual)."""
    layers = [x, *states]
    grads = []
    for l in range(1, len(layers)):
        s = layers[l]
        grad = s * g[l - 1].sum(0) - layers[l - 1] @ g[l - 1] - b[l - 1]
        if l < len(g):
            grad = grad + s * g[l].sum(1) - layers[l + 1] @ g[l].T
        else:
            if nudge is not None:
                grad = grad + nudge.beta * (s - nudge.target)
        grads.append(grad)
    return grads


@pytest.mark.parametrize("layers", SHAPES)
@pytest.mark.parametrize("nudged", [False, True])
def test_equilibrium_satisfies_bounds_and_kkt(layers, nudged):
    g, b, x, t = random_network(layers, seed=sum(layers))
    nudge = Nudge(0.7, t) if nudged else None
    eq = solve(layers, g, b, x, nudge)
    assert eq.converged
    grads = energy_gradient(g, b, x, eq.states, nudge)
    for l, (s, grad) in enumerate(zip(eq.states, grads)):
        if l == len(eq.states) - 1:  # linear outputs: KCL holds exactly
            assert grad.abs().max() < 1e-9
            continue
        half = s.shape[1] // 2
        pos, neg = s[:, :half], s[:, half:]
        assert (pos >= 0).all() and (neg <= 0).all()
        # KKT: zero net current where the diode is off; at the bound, the diode carries
        # the current, so the gradient points out of the feasible set.
        free = torch.cat([pos > 0, neg < 0], dim=1)
        assert grad[free].abs().max() < 1e-9
        assert (grad[:, :half][pos == 0] >= -1e-9).all()
        assert (grad[:, half:][neg == 0] <= 1e-9).all()


@pytest.mark.parametrize("layers", SHAPES)
@pytest.mark.parametrize("nudged", [False, True])
def test_equilibrium_matches_scipy_bounded_minimizer(layers, nudged):
    g, b, x, t = random_network(layers, seed=7 + sum(layers))
    nudge = Nudge(0.7, t) if nudged else None
    eq = solve(layers, g, b, x, nudge)
    sizes = layers[1:]
    bounds = []
    for l, n in enumerate(sizes):
        if l < len(sizes) - 1:
            bounds += [(0, None)] * (n // 2) + [(None, 0)] * (n - n // 2)
        else:
            bounds += [(None, None)] * n
    for k in range(x.shape[0]):  # one example at a time: E is a sum over the batch
        xk = x[k : k + 1]
        nk = Nudge(nudge.beta, nudge.target[k : k + 1]) if nudge else None

        def split(v):
            out, i = [], 0
            for n in sizes:
                out.append(torch.tensor(v[i : i + n], dtype=torch.float64).unsqueeze(0))
                i += n
            return out

        def fun(v, xk=xk, nk=nk):
            states = split(v)
            e = energy(xk, g, b, states, nk).item()
            grad = torch.cat([gr[0] for gr in energy_gradient(g, b, xk, states, nk)]).numpy()
            return e, grad

        res = minimize(fun, np.zeros(sum(sizes)), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
        ours = torch.cat([s[k] for s in eq.states]).numpy()
        assert np.abs(res.x - ours).max() < 1e-6


@pytest.mark.parametrize("layers", SHAPES)
def test_warm_and_cold_starts_reach_the_same_state(layers):
    g, b, x, t = random_network(layers, seed=3)
    free = solve(layers, g, b, x)
    nudge = Nudge(-0.5, t)
    cold = solve(layers, g, b, x, nudge)
    warm = solve(layers, g, b, x, nudge, init=free.states)
    assert warm.iterations <= cold.iterations
    for a, c in zip(warm.states, cold.states):
        assert (a - c).abs().max() < 1e-9


def test_energy_decreases_and_iteration_cap_is_reported(caplog):
    layers = (8, 6, 4, 3)
    g, b, x, _ = random_network(layers, seed=11)
    solver = DRNSolver(Topology(layers), tol=1e-15, max_iter=2)
    eq = solver.solve(x @ g[0], g, b, DRNSolver.denominators(g))
    assert not eq.converged and eq.iterations == 2
    assert "iteration cap" in caplog.text
    converged = solve(layers, g, b, x)
    assert (energy(x, g, b, converged.states) <= energy(x, g, b, eq.states) + 1e-12).all()


def test_fixed_iterations_runs_exactly_that_many_sweeps():
    layers = (6, 4, 3)
    g, b, x, _ = random_network(layers, seed=5)
    solver = DRNSolver(Topology(layers), fixed_iterations=4)
    eq = solver.solve(x @ g[0], g, b, DRNSolver.denominators(g))
    assert eq.iterations == 4


def test_float32_converges_at_its_own_precision():
    """In float32 the tolerance floors at a few ULPs of the largest voltage; it must still converge."""
    layers = (1568, 64, 10)
    gen = torch.Generator().manual_seed(0)
    g = [torch.rand(a, b, generator=gen) / a**0.5 for a, b in zip(layers[:-1], layers[1:])]
    b = [torch.zeros(n) for n in layers[1:]]
    x = torch.rand(8, 784, generator=gen) * 480
    x = torch.cat([x, -x], dim=1)
    eq = DRNSolver(Topology(layers), tol=1e-6).solve(x @ g[0], g, b, DRNSolver.denominators(g))
    assert eq.converged and eq.iterations < 20
