"""hil.analysis (noise_stats, telegraph, averaging, device_fits) on synthetic series of known statistics.

Fixed seeds, numpy only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.analysis import averaging
from hil.analysis import device_fits as df
from hil.analysis import noise_stats as ns
from hil.analysis import telegraph as tg


def white_pink(n: int, dt: float, sigma: float, amp: float, seed: int) -> np.ndarray:
    """White noise (sigma per sample) plus 1/f noise of one-sided PSD amp^2/f, by spectral shaping.

    Coefficients C_k with E|C_k|^2 = S(f_k) N / (2 dt) give, through irfft's 1/N,
    a series whose variance is sum_k S(f_k) df (Parseval), i.e. the PSD S.
    """
    rng = np.random.default_rng(seed)
    f = np.fft.rfftfreq(n, dt)
    s = np.zeros_like(f)
    s[1:] = amp**2 / f[1:]
    c = np.sqrt(s * n / (2 * dt)) * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) / math.sqrt(2)
    return np.fft.irfft(c, n=n) + sigma * rng.standard_normal(n)


def test_allan_of_white_noise_falls_as_one_over_sqrt_n():
    sigma, dt = 1e-3, 1e-4
    x = sigma * np.random.default_rng(1).standard_normal(1 << 16)
    a = ns.allan_deviation(x, dt)
    m = a.tau_s / dt
    # overlapping ADEV of white noise is sigma / sqrt(m); its estimate has relative error ~ 1/sqrt(2 n / m)
    # at most ~ 1/sqrt(2 * 8) at the longest kept tau (n >= 8 points), so 3 sigma is ~0.75 there
    rel = a.adev_v / (sigma / np.sqrt(m))
    assert np.all(np.abs(rel[m <= 256] - 1) < 0.05)
    assert np.all(np.abs(rel - 1) < 0.75)


def test_white_pink_fit_recovers_both_amplitudes():
    dt, sigma = 1e-3, 1e-3
    amp = math.sqrt(2 * sigma**2 * dt * 50.0)  # 1/f meets the white floor at 50 Hz
    x = white_pink(1 << 17, dt, sigma, amp, seed=2)
    fit = ns.fit_white_pink(ns.psd(x, dt, 4096), dt)
    # reported standard errors are ~0.3 % (sigma) and ~2 % (A); 5 % and 10 % are > 4 of them
    assert fit.sigma_rel_err < 0.01 and fit.amplitude_rel_err < 0.03
    assert fit.sigma_v == pytest.approx(sigma, rel=0.05)
    assert fit.amplitude_v == pytest.approx(amp, rel=0.10)
    assert fit.corner_1f_hz == pytest.approx(50.0, rel=0.25)


def test_white_only_gives_no_pink_and_n_is_sigma_over_target_squared():
    dt, sigma = 1e-4, 1e-4
    x = sigma * np.random.default_rng(3).standard_normal(1 << 15)
    node = ns.analyze_node("w", x, dt, 2048)
    assert node.fit.amplitude_v == 0.0  # a 1/f term below two standard errors is reported as none
    assert not node.telegraph.bimodal
    rec = averaging.recommend_n(sigma, 0.0, dt, 5e-5, overhead_s=1e-3, phases=3, batch_size=8)
    assert rec.reachable and rec.n_samples == 4  # (1e-4 / 5e-5)^2
    assert rec.time_per_batch_s == pytest.approx(8 * 3 * (4 * dt + 1e-3))


def test_recommendation_with_a_flicker_floor():
    dt, sigma = 1e-4, 1e-4
    amp = 2e-5  # flicker floor sqrt(2 ln 2) * 2e-5 = 2.35e-5 V
    floor = math.sqrt(2 * math.log(2)) * amp
    rec = averaging.recommend_n(sigma, amp, dt, 5e-5)
    assert rec.reachable
    assert rec.n_samples == math.ceil(sigma**2 / (5e-5**2 - floor**2))
    assert rec.sigma_eff_v <= 5e-5
    low = averaging.recommend_n(sigma, amp, dt, 2e-5)  # below the floor: averaging cannot get there
    assert not low.reachable and low.floor_v == pytest.approx(floor)
    assert low.n_samples == low.n_at_floor


def telegraph(n: int, dt: float, amp: float, capture: float, emission: float, sigma: float, seed: int):
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    s = np.empty(n, dtype=bool)
    state = False
    p_in, p_out = 1 - math.exp(-capture * dt), 1 - math.exp(-emission * dt)
    for i in range(n):
        state = (u[i] < p_in) if not state else (u[i] >= p_out)
        s[i] = state
    return amp * s + sigma * rng.standard_normal(n)


def test_telegraph_detected_and_rates_recovered():
    dt, amp, cap, emi = 1e-3, 1e-3, 5.0, 10.0
    x = telegraph(1 << 17, dt, amp, cap, emi, 0.2 * amp, seed=4)
    t = tg.detect_telegraph(x, dt)
    # ~ 131 s x 3.3 transitions/s ~ 430 dwell times per level: rates to ~5 % (1/sqrt(430))
    assert t.bimodal
    assert t.amplitude_v == pytest.approx(amp, rel=0.05)
    assert t.capture_rate_hz == pytest.approx(cap, rel=0.15)
    assert t.emission_rate_hz == pytest.approx(emi, rel=0.15)
    assert t.occupancy == pytest.approx(cap / (cap + emi), abs=0.05)


def test_no_telegraph_in_a_skewed_single_peak():
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 1.0, 1 << 15) + 0.1 * rng.standard_normal(1 << 15)  # skewed, unimodal
    assert not tg.detect_telegraph(x, 1e-3).bimodal


def test_constant_reads_do_not_break_the_analysis():
    node = ns.analyze_node("c", np.full(512, 0.3), 1e-3, 128)
    assert node.fit.sigma_v == 0.0 and node.std_v < 1e-12 and node.fit.amplitude_v < 1e-12
    assert not node.telegraph.bimodal


def test_quantization_step_found():
    x = np.round(np.random.default_rng(6).normal(0, 3e-3, 4096) / 1e-3) * 1e-3
    assert ns.quantization_step(x) == pytest.approx(1e-3)
    assert ns.quantization_step(np.random.default_rng(6).normal(0, 1, 4096)) is None


def test_write_noise_range_levels_and_drift_fits():
    rng = np.random.default_rng(7)
    cells, reps, a, r = 2000, 8, 0.004, 0.02
    lo = 0.1 * (1 + 0.05 * rng.standard_normal(cells))
    hi = 1.0 * (1 + 0.05 * rng.standard_normal(cells))
    rf = df.fit_range(np.broadcast_to(lo, (reps, cells)), np.broadcast_to(hi, (reps, cells)), 0.0, 10.0)
    assert rf.upper_found and rf.g_min == pytest.approx(0.1, rel=0.01) and rf.g_max == pytest.approx(1.0, rel=0.01)
    assert rf.spread_rel == pytest.approx(0.05, rel=0.1)
    assert rf.p_off == 0.0 and rf.p_on == 0.0
    low_back, high_back = lo.copy(), hi.copy()
    high_back[:20] = lo[:20]  # 1 % stuck at g_min: the high writes leave them low
    low_back[20:30] = hi[20:30]  # 0.5 % stuck at g_max: the low writes leave them high
    rs = df.fit_range(np.broadcast_to(low_back, (reps, cells)), np.broadcast_to(high_back, (reps, cells)), 0.0, 10.0)
    assert rs.p_off == pytest.approx(0.01) and rs.p_on == pytest.approx(0.005)
    assert rs.g_max == pytest.approx(1.0, rel=0.01)
    grid = np.linspace(0.15, 0.85, 10)
    level_of = np.arange(cells) % grid.size
    target = grid[level_of]
    std = np.sqrt(a**2 + (r * target) ** 2)
    g = target + std * rng.standard_normal((reps, cells))
    wn = df.fit_write_noise(target, g, level_of, grid, lo, hi)
    # 200 cells x 7 dof per level: each level's std to 1/sqrt(2 * 1400) = 1.9 %; the fit's own
    # standard errors (from those) are below 5 %, so 15 % is more than 3 of them
    assert wn.sigma_abs_err < 0.05 * a and wn.sigma_rel_err < 0.05 * r
    assert wn.sigma_abs == pytest.approx(a, rel=0.15)
    assert wn.sigma_rel == pytest.approx(r, rel=0.15)
    # levels: 16 per cell range, small write noise
    req = lo + (hi - lo) * rng.random(cells)
    k = 15
    q = lo + np.round((req - lo) / (hi - lo) * k) / k * (hi - lo)
    lev = df.fit_levels(req, q + 1e-4 * rng.standard_normal(cells), lo, hi, np.full(cells, 1e-4))
    assert lev.n_levels == 16
    assert df.fit_levels(req, req + 1e-4 * rng.standard_normal(cells), lo, hi, np.full(cells, 1e-4)).n_levels is None
    # drift after t0 = 0.5 s with nu = 0.03
    t = np.array([0.25, 1.0, 2.0, 4.0, 8.0])
    g0 = rng.uniform(0.2, 0.9, cells)
    gt = g0 * np.where(t[:, None] > 0.5, (t[:, None] / 0.5) ** -0.03, 1.0)
    d = df.fit_drift(t, g0, gt)
    assert d.nu == pytest.approx(0.03, rel=1e-6) and d.t0_s == pytest.approx(0.5, rel=1e-6)
    assert df.fit_drift(t, g0, np.broadcast_to(g0, (t.size, cells))).nu is None


def test_telegraph_allan_variance_limits_and_simulation():
    var, corr = 2.0e-7, 0.01
    tau = np.array([1e-6, 1e-5, 100.0, 1000.0])
    av = ns.telegraph_avar(tau, var, corr)
    assert av[:2] == pytest.approx(2.0 / 3.0 * var * tau[:2] / corr, rel=1e-3)  # no gain while tau << corr
    assert av[2:] == pytest.approx(2.0 * var * corr / tau[2:], rel=0.02)  # white-like beyond
    dt, amp, cap, emi = 1e-3, 1e-3, 5.0, 10.0
    x = telegraph(1 << 16, dt, amp, cap, emi, 0.0, seed=8)
    a = ns.allan_deviation(x, dt)
    p = cap / (cap + emi)
    model = np.sqrt(ns.telegraph_avar(a.tau_s, amp**2 * p * (1 - p), 1 / (cap + emi)))
    hump = (a.tau_s >= 0.004) & (a.tau_s <= 1.0)  # the octaves around the hump, many differences each
    assert np.all(np.abs(a.adev_v[hump] / model[hump] - 1) < 0.2)
