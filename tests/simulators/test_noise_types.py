"""The four noise types at equal single-read std, against their averaging theory (simulators/noise_theory.py).

Each type is drawn for M independent nodes (fresh, stationary state per node),
2N reads each; the first N and the last N are the two windows of an EP update.
Across nodes we measure the variance of one window's mean (the prediction's
noise) and of the difference of the two means (the update's noise), and
compare with the exact theory.  Tolerance: the sample variance of M
independent values has relative standard error sqrt((kappa - 1) / M), kappa
the kurtosis of the values (3 for the Gaussian models; the telegraph's
difference is far from Gaussian, so its kappa is estimated from the same
draws, a plug-in standard error).  Asserts allow 5 standard errors: a correct
model fails with probability < 1e-6, while the wrong averaging law (white
1/N where the theory is flat or rising) is off by 2x-60x at N = 64.
"""

from __future__ import annotations

import math

import pytest
import torch

from hil.simulators.noise import OffsetRead, ReadChain
from hil.simulators.noise_theory import (
    at_single_read_std,
    difference_variance,
    ep_sigma,
    mean_variance,
    single_read_variance,
)

DT = 1e-6  # the twin's default sample period
SIGMA = 1e-3
M = 20_000
LIKE = torch.zeros(1, dtype=torch.float64)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def windows(kind: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of reads 0..n-1 and n..2n-1 of M independent nodes."""
    model = at_single_read_std(kind, SIGMA)
    t = DT * torch.arange(2 * n, dtype=torch.float64)
    x = model.sample((2 * n, M), t, torch.Generator().manual_seed(seed), LIKE, {})
    return x[:n].mean(0), x[n:].mean(0)


def check_variance(values: torch.Tensor, expected: float, what: str) -> None:
    v = values - values.mean()
    var = float((v**2).mean())
    kappa = float((v**4).mean()) / var**2
    se = math.sqrt(max(kappa - 1.0, 2.0) / M)  # never below the Gaussian's sqrt(2/M)
    assert abs(var / expected - 1.0) < 5 * se, f"{what}: measured {var:.4g}, theory {expected:.4g} (se {se:.3g})"


@pytest.mark.parametrize("kind", ["white", "pink", "telegraph", "offset"])
def test_single_read_std_is_equal_across_types(kind):
    model = at_single_read_std(kind, SIGMA)
    assert single_read_variance(model) == pytest.approx(SIGMA**2, rel=1e-9)
    first, _ = windows(kind, 1, seed=1)
    check_variance(first, SIGMA**2, f"{kind} single read")


@pytest.mark.parametrize("kind", ["white", "pink", "telegraph"])
@pytest.mark.parametrize("n", [4, 64])
def test_window_mean_and_difference_follow_theory(kind, n):
    model = at_single_read_std(kind, SIGMA)
    first, second = windows(kind, n, seed=10 + n)
    check_variance(first, mean_variance(model, n, DT), f"{kind} mean of {n}")
    check_variance(second - first, difference_variance(model, n, DT), f"{kind} difference of two means of {n}")


def test_theory_regimes():
    """The shapes the results rest on: white falls as 1/sqrt(N), 1/f is flat, telegraph rises then falls."""
    white, pink, tele = (at_single_read_std(k, SIGMA) for k in ("white", "pink", "telegraph"))
    assert ep_sigma(white, 64, DT) == pytest.approx(SIGMA / 8, rel=1e-12)
    # 1/f: the Allan floor sqrt(2 ln2 / ln(f_max / corner)) sigma, within 2 % from N = 4 on
    floor = math.sqrt(2 * math.log(2) / math.log(5e5)) * SIGMA
    assert all(ep_sigma(pink, n, DT) == pytest.approx(floor, rel=0.02) for n in (4, 16, 64, 1024))
    # per window, 1/f averages away only logarithmically: 64 reads keep > 80 % of the std
    assert math.sqrt(mean_variance(pink, 64, DT)) > 0.8 * SIGMA
    # telegraph (correlation time 8 dt): the update noise grows up to N ~ 16, then falls
    s = [ep_sigma(tele, n, DT) for n in (1, 4, 16, 64, 1024)]
    assert s[0] < s[1] < s[2] and s[2] > s[3] > s[4]


def test_offset_survives_averaging_and_cancels_in_the_difference():
    first, second = windows("offset", 64, seed=3)
    torch.testing.assert_close(second - first, torch.zeros_like(first), rtol=0, atol=0)
    check_variance(first, SIGMA**2, "offset mean of 64")


def test_offset_is_held_in_the_chain_state_and_restored():
    chain = ReadChain([OffsetRead(sigma_v=SIGMA)])
    v = torch.zeros(2, 5, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    a = chain.samples(v, 3, DT * torch.arange(3, dtype=torch.float64), g, key="layer1")
    other = ReadChain([OffsetRead(sigma_v=SIGMA)])
    other.load_state_dict(chain.state_dict())
    b = other.samples(v, 3, DT * torch.arange(3, dtype=torch.float64), torch.Generator().manual_seed(99), key="layer1")
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # same offsets, whatever the generator now
    assert torch.equal(a[0, 0], a[2, 1])  # every sample and row of a node reads the same offset


@pytest.mark.parametrize("centered", [True, False])
def test_offset_cancels_in_both_ep_forms(centered):
    """Offsets c enter the EP estimate only through the squared terms of dE/dG = (u - v)^2 / 2: the biases
    see s2 - s1 exactly, the block between u and v an extra mean_b[(c_u - c_v)(du - dv)] / dbeta, with du,
    dv the offset-free differences (a relative error of order |c| / |u - v|).  Algebra, not statistics:
    asserted to float64 rounding."""
    from hil.ep import ep_gradient
    from hil.interface import Nudge, Topology
    from hil.simulators.twin import TwinConfig, TwinCrossbar

    topo = Topology((6, 4, 3))
    gen = torch.Generator().manual_seed(0)
    g = {"G1": torch.rand(6, 4, generator=gen, dtype=torch.float64),
         "G2": torch.rand(4, 3, generator=gen, dtype=torch.float64),
         "b1": torch.zeros(4, dtype=torch.float64), "b2": torch.zeros(3, dtype=torch.float64)}
    x = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    t = torch.rand(5, 3, generator=gen, dtype=torch.float64)
    dbeta = 1.0 if centered else 0.5
    grads, diffs = {}, {}
    for name, noise in (("ideal", []), ("offset", [{"kind": "offset", "sigma_v": 1e-2}])):
        cfg = TwinConfig.model_validate({"read_noise": noise, "dtype": "float64", "tol_v": 1e-13})
        xbar = TwinCrossbar(topo, cfg, seed=1)
        xbar.program(g)
        lo = xbar.measure(x, nudge=Nudge(-0.5, t), n_samples=4) if centered else xbar.measure(x, n_samples=4)
        hi = xbar.measure(x, nudge=Nudge(0.5, t), n_samples=4)
        grads[name] = ep_gradient(x, lo.voltages, hi.voltages, dbeta, topo)
        diffs[name] = [h - l for h, l in zip(hi.voltages, lo.voltages)]
    c = [xbar.read.state[f"0:layer{l}"]["c"] for l in (1, 2)]
    for a, b in zip(diffs["offset"], diffs["ideal"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)  # the read difference: offset gone
    for b in ("b1", "b2"):
        torch.testing.assert_close(grads["offset"][b], grads["ideal"][b], rtol=1e-9, atol=1e-12)
    du = [torch.zeros_like(x), *diffs["ideal"]]
    cu = [torch.zeros(6, dtype=torch.float64), *c]
    for l in (1, 2):
        extra = ((cu[l - 1].view(1, -1, 1) - cu[l].view(1, 1, -1))
                 * (du[l - 1].unsqueeze(2) - du[l].unsqueeze(1))).mean(0) / dbeta
        torch.testing.assert_close(grads["offset"][f"G{l}"] - grads["ideal"][f"G{l}"], extra, rtol=1e-6, atol=1e-12)
        assert extra.abs().max() > 0
