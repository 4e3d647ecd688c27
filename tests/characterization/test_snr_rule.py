"""`hil characterize` and `train.adaptive` recommend N by one rule: update SNR = S / sqrt(2 AVAR(N dt)) >= T."""

from __future__ import annotations

import math

import pytest

from hil.adaptive import AdaptiveConfig, AdaptiveReads
from hil.analysis import averaging as ns
from hil.interface import Measurement
from hil.protocols.characterize_noise import RecommendSpec


def test_signal_sets_the_noise_target():
    spec = RecommendSpec(signal_v=2e-4, snr_target=2.0)
    assert spec.noise_target_v() == pytest.approx(2e-4 / (2.0 * math.sqrt(2.0)), rel=1e-12)
    assert RecommendSpec(target_v=3e-5).noise_target_v() == 3e-5  # without a signal: the target as given


@pytest.mark.parametrize("signal", [1e-4, 3e-4, 1e-3])
def test_characterize_and_adaptive_agree_on_white_noise(signal):
    """White noise only: AVAR(N dt) = sigma^2 / N, so both rules give N = ceil(2 T^2 sigma^2 / S^2)."""
    import torch

    sigma, target = 1e-3, 2.0
    rec = ns.recommend_n(sigma, 0.0, 1e-6, RecommendSpec(signal_v=signal, snr_target=target).noise_target_v())
    ctl = AdaptiveReads(AdaptiveConfig(snr_target=target, n_min=2, n_max=10**6, smoothing=0.0), 1.0, 2, 1)
    v = torch.ones(2, 4, dtype=torch.float64)
    std = torch.full_like(v, sigma)
    n = 10**5  # measured with so many reads that the noise subtracted from the signal is negligible
    m1, m2 = Measurement([v], [std], n, torch.zeros(1)), Measurement([v + signal], [std], n, torch.zeros(1))
    ctl.observe(m1, m2, beta_used=1.0)
    expected = math.ceil(2 * target**2 * sigma**2 / signal**2)
    assert rec.n_samples == expected
    # the adaptive rule subtracts the noise share 2 sigma^2 / n from S^2 (2e-3 of it at S = 1e-4): N moves by <= 0.3 %
    assert abs(ctl.n_samples - expected) <= max(1, 3e-3 * expected)
