"""The solver's read-back schedule: `check_every` and `fixed_iterations` (what keeps a GPU from
stalling on host syncs), and the `device:` choice, checked on the CPU."""

from __future__ import annotations

import pytest
import torch

from hil.errors import ConfigError
from hil.interface import Nudge, Topology
from hil.simulators.drn import DRNSolver
from hil.simulators.twin import TwinConfig, TwinCrossbar

LAYERS = (12, 8, 6, 3)


def network(seed=0):
    gen = torch.Generator().manual_seed(seed)
    g = [torch.rand(a, b, generator=gen, dtype=torch.float64) for a, b in zip(LAYERS[:-1], LAYERS[1:])]
    b = [torch.randn(n, generator=gen, dtype=torch.float64) * 0.1 for n in LAYERS[1:]]
    x = torch.randn(5, LAYERS[0], generator=gen, dtype=torch.float64)
    return g, b, x, Nudge(0.5, torch.rand(5, LAYERS[-1], generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("every", [2, 3, 7])
def test_checking_every_k_sweeps_stops_on_a_multiple_of_k_at_most_k_minus_1_sweeps_late(every):
    g, b, x, nudge = network()
    kw = dict(tol=1e-10, max_iter=10_000)
    ref = DRNSolver(Topology(LAYERS), **kw).solve(x @ g[0], g, b, DRNSolver.denominators(g), nudge=nudge)
    eq = DRNSolver(Topology(LAYERS), check_every=every, **kw).solve(x @ g[0], g, b, DRNSolver.denominators(g),
                                                                   nudge=nudge)
    assert ref.converged and eq.converged
    assert eq.iterations % every == 0 and ref.iterations <= eq.iterations < ref.iterations + every
    # both within tol of the same fixed point: the extra sweeps only shrink the residual further
    assert eq.residual <= 1e-10
    for s, r in zip(eq.states, ref.states, strict=True):
        torch.testing.assert_close(s, r, rtol=0, atol=1e-8)


def test_check_every_must_be_positive():
    with pytest.raises(ValueError, match="check_every"):
        DRNSolver(Topology(LAYERS), check_every=0)


def test_fixed_sweeps_run_exactly_that_many_and_read_nothing_back(monkeypatch):
    g, b, x, nudge = network(1)
    calls = []
    monkeypatch.setattr(DRNSolver, "_residual_and_limit", lambda *a: calls.append(a) or (0.0, 1.0))
    eq = DRNSolver(Topology(LAYERS), fixed_iterations=4).solve(x @ g[0], g, b, DRNSolver.denominators(g))
    assert eq.iterations == 4 and eq.converged and calls == []


def test_twin_config_passes_check_every_to_its_solver():
    xbar = TwinCrossbar(Topology(LAYERS), TwinConfig(check_every=4, device="cpu"))
    assert xbar.solver.check_every == 4 and "check_every=4" in repr(xbar.solver)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: cuda is then a valid choice")
def test_asking_for_cuda_without_one_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="crossbar.device: 'cuda'"):
        TwinCrossbar(Topology(LAYERS), TwinConfig(device="cuda"))
