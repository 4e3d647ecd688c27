"""Read-noise models against their theory, at fixed seeds.

Each tolerance is derived in a comment next to its assert.  The seeds are
fixed, so every test is deterministic; the tolerances say how far a correct
model could land by chance (several standard errors) while a wrong model (a
wrong slope, rate, step or averaging law) lands far outside.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal, stats

from hil.simulators.noise import AdcQuantization, GaussianRead, PinkRead, ReadChain, TelegraphRead, _chunk_len

LIKE = torch.zeros(1, dtype=torch.float64)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small batched matmuls are far faster on one thread on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def times(n: int, dt: float, start: int = 0) -> torch.Tensor:
    return dt * torch.arange(start, start + n, dtype=torch.float64)


def test_pink_psd_slope_is_minus_one_over_two_decades():
    dt, n = 1e-3, 2**17
    model = PinkRead(amplitude_v=1e-3, corner_hz=0.05, f_max_hz=500.0)
    state: dict = {}
    # drawn in four successive calls: the state carries over, as across measure() calls
    parts = [model.sample((n // 4, 1), times(n // 4, dt, k * n // 4), gen(0), LIKE, state) for k in range(4)]
    x = torch.cat(parts)[:, 0].numpy()
    f, p = signal.welch(x, fs=1 / dt, nperseg=2**12)
    band = (f >= 0.5) & (f <= 50.0)
    slope, _ = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)
    # Spec: within 0.1 of -1.  Model bias: the band edges (0.05 Hz, 500 Hz) lower the PSD by
    # (2/pi)(atan(f_max/f) - atan(f_c/f)) ~ 0.94 at both ends of the fit band alike, so the
    # slope moves < 0.01; Welch with 63 segments has ~13 % scatter per bin, and a least-squares
    # slope over ~200 bins spanning 2 decades has a standard error ~ 0.01.
    assert abs(slope + 1.0) < 0.1, slope
    # level: the mean ratio to the model's PSD over the band, scatter ~ 13 % / sqrt(200) ~ 1 %
    ratio = np.mean(p[band] / model.psd(torch.from_numpy(f[band])).numpy())
    assert abs(ratio - 1.0) < 0.1, ratio


def test_pink_state_is_continuous_across_calls():
    """One call, or four calls of a whole number of the update's blocks: the same numbers."""
    model = PinkRead(amplitude_v=1.0, corner_hz=1.0, f_max_hz=1e4)
    part = 2 * _chunk_len(len(model.terms()[0]), 3)
    whole = model.sample((4 * part, 3), times(4 * part, 1e-4), gen(5), LIKE, {})
    g, state = gen(5), {}
    split = torch.cat([model.sample((part, 3), times(part, 1e-4, part * k), g, LIKE, state) for k in range(4)])
    torch.testing.assert_close(split, whole, rtol=1e-12, atol=1e-12)


def dwell_runs(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths (samples) of the complete runs of 0s and of 1s (first and last runs dropped)."""
    edges = np.flatnonzero(np.diff(s.astype(np.int8))) + 1
    runs = np.diff(edges)
    kinds = s[edges[:-1]]
    return runs[kinds == 0], runs[kinds == 1]


def test_telegraph_dwell_times_are_exponential_with_the_set_rates():
    dt, n = 1e-4, 400_000
    capture, emission = 200.0, 500.0
    model = TelegraphRead(amplitude_v=1.0, capture_rate_hz=capture, emission_rate_hz=emission)
    state: dict = {}
    s = torch.cat([model.sample((n // 2, 1), times(n // 2, dt, k * n // 2), gen(1), LIKE, state) for k in range(2)])
    empty, full = dwell_runs(s[:, 0].numpy() > 0.5)
    for runs, rate in ((empty, capture), (full, emission)):
        # Sampled every dt, a dwell of Exp(rate) is seen as a Geometric(p = 1 - exp(-rate dt)) run;
        # the MLE of the rate is -ln(1 - 1/mean) / dt.  ~5700 dwells of each kind (40 s over a
        # 7 ms cycle): relative standard error 1/sqrt(5700) = 1.3 %, so 5 % (the spec) is ~4 sigma.
        rate_hat = -math.log(1.0 - 1.0 / runs.mean()) / dt
        assert abs(rate_hat / rate - 1.0) < 0.05, (rate, rate_hat, len(runs))
        # Shape: the survival at 1, 2 and 3 mean dwells is exp(-k) (geometric: (1-p)^m);
        # binomial standard error <= sqrt(0.25 / 5700) = 0.0066, so 0.025 is ~4 sigma.
        p = 1.0 - math.exp(-rate * dt)
        for k in (1, 2, 3):
            m = round(k / (rate * dt))
            assert abs((runs > m).mean() - (1 - p) ** m) < 0.025, (rate, k)


def test_adc_error_is_uniform_with_the_right_step():
    adc = AdcQuantization(bits=10, v_min=-1.0, v_max=1.0)
    q = adc.step_v
    assert q == pytest.approx(2.0 / 1024)
    v = torch.rand(200_000, generator=gen(2), dtype=torch.float64) * 1.8 - 0.9
    err = (adc.apply(v) - v).numpy()
    assert np.abs(err).max() <= q / 2 * (1 + 1e-9)  # mid-rise: never more than half a step
    codes = np.unique(np.round((adc.apply(v).numpy() + 1.0) / q - 0.5, 6))
    np.testing.assert_allclose(codes, np.round(codes))  # outputs sit on bin centres
    # Uniform on [-q/2, q/2]: variance q^2/12 with relative standard error sqrt(0.8/n) = 0.2 %
    # (kurtosis 1.8); 2 % is ~10 sigma.  KS against U(-q/2, q/2) at n = 2e5 passes a correct
    # model with p ~ U(0, 1); we only reject at p < 1e-3.
    assert err.var() == pytest.approx(q**2 / 12, rel=0.02)
    assert stats.kstest(err, stats.uniform(loc=-q / 2, scale=q).cdf).pvalue > 1e-3
    out = adc.apply(torch.tensor([-5.0, 5.0], dtype=torch.float64))
    assert out.tolist() == [-1.0 + q / 2, 1.0 - q / 2] and adc.saturated(torch.tensor([-5.0, 0.0, 5.0])) == 2


def mean_variance_mc(chain: ReadChain, n: int, dt: float, nodes: int, seed: int) -> float:
    """Variance over `nodes` independent nodes of the mean of n reads of a constant 0.25 V."""
    v = torch.full((1, nodes), 0.25, dtype=torch.float64)
    reads = chain.samples(v, n, times(n, dt), gen(seed), key="h")
    return float(reads.mean(dim=0).var())


# M = 4000 independent nodes: the sample variance of M Gaussian means has relative standard
# error sqrt(2 / (M - 1)) = 2.2 %; 10 % is ~4.5 sigma.  (RTN means are not Gaussian for small
# n: a binary variable of occupancy p has relative error sqrt((kurtosis - 1) / M) = 1.6 % at
# p = 0.29, still inside.)
M = 4000
REL = 0.10


@pytest.mark.parametrize("n", [1, 16, 256])
def test_white_mean_shrinks_as_one_over_sqrt_n(n):
    model = GaussianRead(sigma_v=1e-3)
    got = mean_variance_mc(ReadChain([model]), n, 1e-5, M, seed=10 + n)
    assert got == pytest.approx(model.mean_variance(n, 1e-5), rel=REL)
    assert model.mean_variance(n, 1e-5) == pytest.approx(1e-6 / n)


def test_pink_mean_shrinks_only_logarithmically():
    model = PinkRead(amplitude_v=1e-3, corner_hz=10.0, f_max_hz=1e5)
    dt = 1e-5
    got = {n: mean_variance_mc(ReadChain([model]), n, dt, M, seed=20 + n) for n in (1, 16, 256)}
    for n, var in got.items():
        assert var == pytest.approx(model.mean_variance(n, dt), rel=REL), n
    # 1/f: for 1/(2 pi f_max) << n dt << 1/(2 pi f_c) the variance of the mean is about
    # A^2 (ln(1 / (2 pi f_c n dt)) + 1): each factor k in n removes only A^2 ln k, instead of
    # dividing by k.  From n = 1 to 256 it keeps 30 % of its value (white noise: 0.4 %).
    assert model.mean_variance(256, dt) / model.mean_variance(1, dt) == pytest.approx(0.305, abs=0.005)
    assert got[256] / got[1] > 0.25
    # the drop from n = 16 to 256 is A^2 ln 16; MC error of the difference: the two variances'
    # 2.2 % errors (of 5.6e-6 and 2.8e-6) give 0.14e-6, i.e. 5 % of 2.77e-6, so 20 % is 4 sigma
    assert got[16] - got[256] == pytest.approx(1e-6 * math.log(16), rel=0.2)
    assert model.mean_variance(16, dt) - model.mean_variance(256, dt) == pytest.approx(1e-6 * math.log(16), rel=0.01)


def test_telegraph_mean_follows_its_correlation_time():
    model = TelegraphRead(amplitude_v=1e-3, capture_rate_hz=2e3, emission_rate_hz=5e3)
    dt = 1e-5  # correlation time 1/7000 s = 14 samples
    for n in (1, 16, 256):
        got = mean_variance_mc(ReadChain([model]), n, dt, M, seed=30 + n)
        assert got == pytest.approx(model.mean_variance(n, dt), rel=REL), n
    # for n dt >> 1/(capture + emission): 1/n law, inflated by (1 + rho)/(1 - rho), rho = exp(-7000 dt)
    rho = math.exp(-7e3 * dt)
    p = 2 / 7
    assert model.mean_variance(4096, dt) == pytest.approx(
        1e-6 * p * (1 - p) / 4096 * (1 + rho) / (1 - rho), rel=0.02
    )


def test_adc_with_dither_averages_like_white_noise():
    """Gaussian noise above the step dithers the ADC: the mean's variance is (sigma^2 + q^2/12) / n.

    With sigma = 2q the quantization error is uniform and independent of the input up to
    terms of order exp(-2 pi^2 sigma^2 / q^2) ~ 1e-34 (Widrow's theorem).
    """
    adc = AdcQuantization(bits=8, v_min=-1.0, v_max=1.0)
    sigma = 2 * adc.step_v
    chain = ReadChain([GaussianRead(sigma_v=sigma), adc])
    for n in (1, 16, 256):
        got = mean_variance_mc(chain, n, 1e-5, M, seed=40 + n)
        assert got == pytest.approx((sigma**2 + adc.step_v**2 / 12) / n, rel=REL), n


def test_adc_without_dither_is_a_bias_that_averaging_keeps():
    adc = AdcQuantization(bits=8, v_min=-1.0, v_max=1.0)
    reads = ReadChain([adc]).samples(torch.full((1, 3), 0.3, dtype=torch.float64), 64, times(64, 1e-5), gen(0))
    bias = reads.mean(0) - 0.3
    assert torch.all(bias == bias[0, 0]) and 0 < abs(float(bias[0, 0])) <= adc.step_v / 2


def test_every_draw_uses_the_generator():
    chain = lambda: ReadChain(  # noqa: E731
        [
            GaussianRead(sigma_v=1e-3),
            PinkRead(amplitude_v=1e-3, corner_hz=1.0),
            TelegraphRead(amplitude_v=1e-3, capture_rate_hz=1e3, emission_rate_hz=1e3),
            AdcQuantization(bits=12, v_min=-1, v_max=1),
        ]
    )
    v = torch.zeros(2, 5, dtype=torch.float64)
    a = chain().samples(v, 32, times(32, 1e-5), gen(7), key="x")
    b = chain().samples(v, 32, times(32, 1e-5), gen(7), key="x")
    c = chain().samples(v, 32, times(32, 1e-5), gen(8), key="x")
    assert torch.equal(a, b) and not torch.equal(a, c)
