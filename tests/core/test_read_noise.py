"""White read noise on the twin: sigma/sqrt(N) for both read paths, Gaussian samples, seeded runs.

For M independent errors e_i ~ N(0, s^2) with s^2 = sigma^2/N, (M-1) var(e)/s^2
follows chi^2 with M-1 degrees of freedom (e has known mean 0, but we use the
sample variance to stay conservative).  We accept inside the central 99.9 %
of that distribution; the seed is fixed, so the test is deterministic and a
wrong scale (e.g. sigma/N or sigma) lies hundreds of standard errors outside.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from hil.interface import Nudge, Topology
from hil.simulators.twin import TwinConfig, TwinCrossbar

TOP = Topology((8, 6, 3))
SIGMA = 1e-3


def make(sigma=SIGMA, read_path="exact", seed=0):
    twin = TwinCrossbar(TOP, TwinConfig(sigma=sigma, read_path=read_path, dtype="float64"), seed=seed)
    gen = torch.Generator().manual_seed(1)
    twin.program({"G1": torch.rand(8, 6, generator=gen), "G2": torch.rand(6, 3, generator=gen),
                  "b1": torch.zeros(6), "b2": torch.zeros(3)})
    return twin


def inputs(b=400):
    return torch.randn(b, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


@pytest.mark.parametrize("read_path", ["exact", "explicit"])
@pytest.mark.parametrize("n", [1, 4, 64])
def test_mean_of_n_reads_has_std_sigma_over_sqrt_n(read_path, n):
    x = inputs()
    truth = torch.cat(make(sigma=0.0).measure(x).voltages, dim=1)
    twin = make(read_path=read_path)
    errors = torch.cat([torch.cat(twin.measure(x, n_samples=n).voltages, dim=1) - truth for _ in range(5)])
    m = errors.numel()
    stat = (m - 1) * errors.flatten().var().item() / (SIGMA**2 / n)
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], m - 1)
    assert lo < stat < hi, f"{read_path} N={n}: std {errors.std():.4g} vs {SIGMA / math.sqrt(n):.4g}"


@pytest.mark.parametrize("read_path", ["exact", "explicit"])
def test_reported_sample_std_estimates_sigma(read_path):
    """E[s] for N samples is c4(N) sigma with c4 ~ 1 - 1/(4N); over 7200 nodes the mean is within 1 %."""
    m = make(read_path=read_path).measure(inputs(), n_samples=16)
    mean_std = torch.cat(m.std, dim=1).mean().item()
    c4 = 1 - 1 / (4 * 16)
    assert abs(mean_std / (c4 * SIGMA) - 1) < 0.01


def test_explicit_samples_are_gaussian_and_average_to_the_mean():
    twin = make(read_path="explicit")
    x = inputs(50)
    truth = make(sigma=0.0).measure(x).voltages
    m = twin.measure(x, n_samples=200, keep_samples=True)
    assert m.samples is not None and m.samples[0].shape == (200, 50, 6)
    for s, mean, v in zip(m.samples, m.voltages, truth):
        assert torch.allclose(s.mean(0), mean)
        noise = (s - v).flatten().numpy()
        assert stats.normaltest(noise).pvalue > 1e-3  # D'Agostino-Pearson: skew and kurtosis of N(0, s^2)
        assert abs(noise.std() / SIGMA - 1) < 0.02  # 30,000 draws: relative s.e. of s ~ 0.4 %


def test_same_seed_gives_identical_reads_and_different_seed_does_not():
    x = inputs(20)
    t = torch.rand(20, 3, dtype=torch.float64)
    runs = []
    for seed in (5, 5, 6):
        twin = make(seed=seed)
        runs.append(torch.cat([twin.measure(x, n_samples=3).output,
                               twin.measure(x, nudge=Nudge(0.5, t), n_samples=3).output]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_keep_samples_on_the_exact_path_draws_them_explicitly():
    m = make().measure(inputs(10), n_samples=7, keep_samples=True)
    assert m.samples[1].shape == (7, 10, 3) and m.timestamps_s.shape == (7,)
    assert (m.timestamps_s.diff() > 0).all()
