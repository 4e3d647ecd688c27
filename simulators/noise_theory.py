"""Noise types at an equal single-read std, and what N-sample averaging does to each.

EP reads every node twice per update, each read the mean of N samples, and
uses their difference `s(beta_2) - s(beta_1)`.  Two numbers per model say how
averaging helps (both exact for the models of `noise.py`, samples `dt_s` apart):

- `mean_variance(model, n, dt)`: the variance of one N-sample mean, what a
  prediction (free phase, test set) sees.  White: `sigma^2 / N`; 1/f: falls
  only logarithmically and floors at the power under its corner; telegraph: no
  gain until `N dt` passes its correlation time, then `1/N`; offset: no gain.
- `difference_variance(model, n, dt)`: the variance of the difference of two
  adjacent N-sample means, what the EP update sees.  It is twice the Allan
  variance at `tau = N dt`.  White: `2 sigma^2 / N`; offset: 0 (it cancels,
  in centered and in one-sided EP alike); 1/f: flat in N (its Allan floor
  `2 ln2 A^2`), below white at equal std; telegraph: *grows* with N while
  `N dt` is below its correlation time (the two windows drift apart), peaks,
  then falls as `1/N`.

`ep_sigma` turns the second into a white-equivalent noise: the sigma of white
noise at N = 1 that gives the same update noise, so each type can be placed
on the white-noise accuracy curve (docs/results/beyond).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel

from hil.simulators.noise import GaussianRead, OffsetRead, PinkRead, TelegraphRead, _ar1_mean_factor

NoiseKind = Literal["white", "pink", "telegraph", "offset"]
Model = GaussianRead | PinkRead | TelegraphRead | OffsetRead


def at_single_read_std(
    kind: NoiseKind,
    sigma_v: float,
    *,
    corner_hz: float = 1.0,
    f_max_hz: float = 5e5,
    per_decade: int = 1,
    correlation_s: float = 8e-6,
    occupancy: float = 0.5,
) -> Model:
    """A model of `kind` whose single read has standard deviation `sigma_v`.

    Pink: total variance `A^2 ln(f_max / corner)` (exact for the discretised sum
    of `PinkRead.terms`), so `A = sigma / sqrt(ln(f_max / corner))`; one term per
    decade by default (a draw costs one normal per term, sample and node).
    Telegraph: variance `a^2 p (1 - p)`, rates set by the correlation time
    `1 / (capture + emission)` and the occupancy `p`.
    """
    if kind == "white":
        return GaussianRead(sigma_v=sigma_v)
    if kind == "offset":
        return OffsetRead(sigma_v=sigma_v)
    if kind == "pink":
        amplitude = sigma_v / math.sqrt(math.log(f_max_hz / corner_hz))
        return PinkRead(amplitude_v=amplitude, corner_hz=corner_hz, f_max_hz=f_max_hz, per_decade=per_decade)
    if kind == "telegraph":
        total = 1.0 / correlation_s
        p = occupancy
        return TelegraphRead(amplitude_v=sigma_v / math.sqrt(p * (1 - p)), capture_rate_hz=p * total,
                             emission_rate_hz=(1 - p) * total)
    raise ValueError(f"unknown noise kind {kind!r} (white, pink, telegraph, offset)")


def _ar1_terms(model: BaseModel, dt_s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Variances and lag-one correlations of the AR(1) terms a time-correlated model is made of."""
    if isinstance(model, PinkRead):
        rates, var = model.terms()
        return var, torch.exp(-rates * dt_s)
    if isinstance(model, TelegraphRead):
        p = model.occupancy
        rate = model.capture_rate_hz + model.emission_rate_hz
        var = torch.tensor([model.amplitude_v**2 * p * (1 - p)], dtype=torch.float64)
        return var, torch.tensor([math.exp(-rate * dt_s)], dtype=torch.float64)
    raise TypeError(f"{type(model).__name__} is not made of AR(1) terms")


def single_read_variance(model: Model) -> float:
    """Variance of one read (V^2)."""
    if isinstance(model, GaussianRead | OffsetRead):
        return model.sigma_v**2
    var, _ = _ar1_terms(model, 1.0)
    return float(var.sum())


def mean_variance(model: Model, n: int, dt_s: float) -> float:
    """Variance of the mean of n reads spaced dt_s apart (V^2)."""
    return model.mean_variance(n, dt_s)


def difference_variance(model: Model, n: int, dt_s: float) -> float:
    """Variance of (mean of reads n..2n-1) - (mean of reads 0..n-1), reads dt_s apart (V^2).

    For an AR(1) term of variance v and lag-one correlation rho the covariance
    of the two window means is `v rho (1 - rho^n)^2 / (n (1 - rho))^2`, so the
    difference has variance `2 v (F(rho, n) - that)`, F the mean factor.
    """
    if isinstance(model, GaussianRead):
        return 2.0 * model.sigma_v**2 / n
    if isinstance(model, OffsetRead):
        return 0.0
    var, rho = _ar1_terms(model, dt_s)
    cov = rho * (1 - rho**n) ** 2 / (n * (1 - rho)) ** 2
    return float((2.0 * var * (_ar1_mean_factor(rho, n) - cov)).sum())


def ep_sigma(model: Model, n: int, dt_s: float) -> float:
    """White-equivalent noise of the EP update: `sqrt(difference_variance / 2)`, = sigma / sqrt(N) for white."""
    return math.sqrt(difference_variance(model, n, dt_s) / 2.0)
