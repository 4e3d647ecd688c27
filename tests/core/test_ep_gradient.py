"""EP is a gradient method: centered EP with small beta equals dC/dtheta at equilibrium.

C(theta) = 1/2 |y*(theta) - t|^2 summed over the batch, with y* the free
equilibrium.  Centered EP's bias is O(beta^2) and finite differences' error
O(eps^2) plus solver tolerance / eps, so with beta = 1e-3, eps = 1e-6 and a
1e-14 solver tolerance both sides agree far better than the 2 % required.
"""

from __future__ import annotations

import pytest
import torch

from hil.ep import ep_gradient, ep_step_
from hil.interface import Nudge, Topology
from hil.simulators.drn import DRNSolver


def network(layers, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {f"G{l}": torch.rand(a, b, generator=gen, dtype=torch.float64)
              for l, (a, b) in enumerate(zip(layers[:-1], layers[1:]), start=1)}
    params.update({f"b{l}": 0.3 * torch.randn(n, generator=gen, dtype=torch.float64)
                   for l, n in enumerate(layers[1:], start=1)})
    x = 2.0 * torch.randn(3, layers[0], generator=gen, dtype=torch.float64)
    t = torch.rand(3, layers[-1], generator=gen, dtype=torch.float64)
    return params, x, t


def states(params, layers, x, nudge=None):
    depth = len(layers) - 1
    g = [params[f"G{l}"] for l in range(1, depth + 1)]
    b = [params[f"b{l}"] for l in range(1, depth + 1)]
    solver = DRNSolver(Topology(layers), tol=1e-14, max_iter=100_000)
    return solver.solve(x @ g[0], g, b, DRNSolver.denominators(g), nudge=nudge).states


def loss(params, layers, x, t):
    y = states(params, layers, x)[-1]
    return 0.5 * ((y - t) ** 2).sum().item()


@pytest.mark.parametrize("layers", [(6, 4, 3), (6, 4, 4, 2)])
def test_centered_ep_matches_finite_difference_gradient(layers):
    params, x, t = network(layers, seed=1)
    beta = 1e-3
    s_minus = states(params, layers, x, Nudge(-beta, t))
    s_plus = states(params, layers, x, Nudge(beta, t))
    # ep_gradient averages over the batch; C sums over it.
    ep = {k: v * x.shape[0] for k, v in ep_gradient(x, s_minus, s_plus, 2 * beta, Topology(layers)).items()}
    eps = 1e-6
    fd = {}
    for name, p in params.items():
        grad = torch.zeros_like(p)
        flat = p.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            up = loss(params, layers, x, t)
            flat[i] = old - eps
            down = loss(params, layers, x, t)
            flat[i] = old
            grad.view(-1)[i] = (up - down) / (2 * eps)
        fd[name] = grad
    ep_all = torch.cat([ep[k].flatten() for k in params])
    fd_all = torch.cat([fd[k].flatten() for k in params])
    rel = (ep_all - fd_all).norm() / fd_all.norm()
    assert rel < 0.02, f"relative error {rel:.3g}"
    for name in params:  # and block by block, so no block hides behind another
        assert (ep[name] - fd[name]).norm() <= 0.02 * fd[name].norm() + 1e-9, name


def test_update_never_builds_a_batch_by_block_tensor_and_matches_the_explicit_formula():
    """The matmul form of the update equals the explicit per-example sum of DESIGN.md."""
    layers = (5, 4, 3)
    params, x, t = network(layers, seed=2)
    s1 = states(params, layers, x, Nudge(-0.5, t))
    s2 = states(params, layers, x, Nudge(0.5, t))
    eta = 0.1
    before = {k: v.clone() for k, v in params.items()}
    ep_step_(params, x, s1, s2, 1.0, [eta, eta], [eta, eta])
    h1, h2 = s1[0], s2[0]
    explicit = -(eta / 1.0) * 0.5 * (((x[:, :, None] - h2[:, None, :]) ** 2)
                                     - ((x[:, :, None] - h1[:, None, :]) ** 2)).mean(0)
    assert torch.allclose(params["G1"] - before["G1"], explicit, atol=1e-12)
    y1, y2 = s1[1], s2[1]
    explicit2 = -eta * 0.5 * (((h2[:, :, None] - y2[:, None, :]) ** 2)
                              - ((h1[:, :, None] - y1[:, None, :]) ** 2)).mean(0)
    assert torch.allclose(params["G2"] - before["G2"], explicit2, atol=1e-12)
    assert torch.allclose(params["b1"] - before["b1"], eta * (h2 - h1).mean(0), atol=1e-12)
