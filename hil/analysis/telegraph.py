"""Random telegraph noise in a read series: is the histogram bimodal, and if so, its two levels and rates.

Pure numpy/scipy on one node's series `x` sampled every `dt_s` (conventions of `noise_stats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import median_filter


@dataclass
class TelegraphFit:
    """Two levels `low` and `low + amplitude`; captured = the `low + amplitude` level."""

    bimodal: bool
    separation: float  # Ashman's D = |mu1 - mu2| / sigma (equal widths); > 2 is bimodal
    low_v: float = 0.0
    amplitude_v: float = 0.0
    occupancy: float = 0.0
    capture_rate_hz: float = 0.0
    emission_rate_hz: float = 0.0
    transitions: int = 0
    state: np.ndarray | None = field(default=None, repr=False)

    @property
    def allan_terms(self) -> tuple[float, float] | None:
        """(variance, correlation time) for `adev_model`, or None without a telegraph."""
        rate = self.capture_rate_hz + self.emission_rate_hz
        if not self.bimodal or rate <= 0:
            return None
        return self.amplitude_v**2 * self.occupancy * (1.0 - self.occupancy), 1.0 / rate


def _two_gaussians(x: np.ndarray, iters: int = 200) -> tuple[np.ndarray, np.ndarray, float, float]:
    """EM for a mixture of two Gaussians of one common width: (means, weights, sigma, loglik gain vs one)."""
    lo, hi = np.percentile(x, [10, 90])
    mu = np.array([lo, hi], dtype=np.float64)
    wt = np.array([0.5, 0.5])
    sd = max(float(np.std(x)) / 2.0, 1e-300)
    for _ in range(iters):
        z = -0.5 * ((x[:, None] - mu[None, :]) / sd) ** 2 + np.log(np.maximum(wt, 1e-300))
        zmax = z.max(axis=1, keepdims=True)
        r = np.exp(z - zmax)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0)
        new_mu = (r * x[:, None]).sum(axis=0) / np.maximum(nk, 1e-300)
        new_sd = math.sqrt(max(float((r * (x[:, None] - new_mu[None, :]) ** 2).sum() / x.size), 1e-300))
        wt = nk / x.size
        done = np.allclose(new_mu, mu, rtol=0, atol=1e-6 * sd) and abs(new_sd - sd) < 1e-6 * sd
        mu, sd = new_mu, new_sd
        if done:
            break
    z = -0.5 * ((x[:, None] - mu[None, :]) / sd) ** 2 + np.log(np.maximum(wt, 1e-300)) - math.log(sd)
    zmax = z.max(axis=1, keepdims=True)
    ll2 = float((zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))).sum())
    ll1 = float(-0.5 * x.size - x.size * math.log(max(float(np.std(x)), 1e-300)))
    return mu, wt, sd, ll2 - ll1


def _has_dip(x: np.ndarray, mu: np.ndarray) -> bool:
    """Two peaks, not a skewed or wandering single one: the histogram dips between the two means."""
    counts, edges = np.histogram(x, bins=60)
    centres = 0.5 * (edges[1:] + edges[:-1])
    smooth = np.convolve(counts, np.ones(3) / 3.0, mode="same")
    i0, i1 = (int(np.argmin(np.abs(centres - m))) for m in mu)
    if i1 - i0 < 2:
        return False
    valley = smooth[i0 : i1 + 1].min()
    return bool(valley < 0.8 * min(smooth[i0], smooth[i1]))


def detect_telegraph(x: np.ndarray, dt_s: float, min_separation: float = 2.0) -> TelegraphFit:
    """Look for a bimodal histogram; if there is one, fit a two-level telegraph signal.

    Bimodal means: a two-Gaussian mixture beats one Gaussian by BIC, its means
    lie more than `min_separation` common widths apart (Ashman's D > 2), the
    rarer level holds at least 0.5 % of the samples, and the histogram dips
    between the two means (a skewed or drifting single peak does not).  The state sequence comes
    from a hysteresis threshold at 1/4 and 3/4 of the step on a 3-sample running
    median (so white noise does not make spurious transitions), the rates from the mean dwell times:
    capture = 1 / mean time at the low level, emission = 1 / mean time at the high one.
    """
    x = np.asarray(x, dtype=np.float64)
    sub = x[:: max(1, x.size // 50_000)]
    if not np.std(sub) > 0:
        return TelegraphFit(False, 0.0)
    mu, wt, sd, gain = _two_gaussians(sub)
    order = np.argsort(mu)
    mu, wt = mu[order], wt[order]
    sep = float(abs(mu[1] - mu[0]) / sd)
    bic_gain = 2.0 * gain - 2.0 * math.log(sub.size)  # two more free parameters than one Gaussian
    if not (sep > min_separation and wt.min() > 0.005 and bic_gain > 0 and _has_dip(sub, mu)):
        return TelegraphFit(False, sep)
    step = float(mu[1] - mu[0])
    lo_th, hi_th = mu[0] + step / 4.0, mu[0] + 3.0 * step / 4.0
    state = np.empty(x.size, dtype=bool)
    s = bool(x[0] > mu[0] + step / 2.0)
    # hysteresis on a 3-sample running median (one noisy sample is no transition), vectorised:
    # the state changes only where the series leaves the dead band
    xm = median_filter(x, size=3, mode="nearest")
    mark = np.where(xm > hi_th, 1, np.where(xm < lo_th, 0, -1))
    idx = np.where(mark >= 0, np.arange(x.size), -1)
    last = np.maximum.accumulate(idx)
    state[:] = np.where(last >= 0, mark[np.maximum(last, 0)] == 1, s)
    change = np.flatnonzero(np.diff(state.astype(np.int8)))
    bounds = np.concatenate([[0], change + 1, [x.size]])
    runs = np.diff(bounds)
    levels = state[bounds[:-1]]
    inner = slice(1, -1) if runs.size > 2 else slice(0, runs.size)  # first and last runs are cut off
    r_in, l_in = runs[inner], levels[inner]
    t_low = r_in[~l_in].mean() * dt_s if (~l_in).any() else math.inf
    t_high = r_in[l_in].mean() * dt_s if l_in.any() else math.inf
    low = float(x[~state].mean()) if (~state).any() else float(mu[0])
    high = float(x[state].mean()) if state.any() else float(mu[1])
    return TelegraphFit(
        bimodal=True,
        separation=sep,
        low_v=low,
        amplitude_v=high - low,
        occupancy=float(state.mean()),
        capture_rate_hz=1.0 / t_low if math.isfinite(t_low) else 0.0,
        emission_rate_hz=1.0 / t_high if math.isfinite(t_high) else 0.0,
        transitions=int(change.size),
        state=state,
    )
