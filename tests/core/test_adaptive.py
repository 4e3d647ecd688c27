"""Adaptive reads (`train.adaptive`, hil/adaptive.py): the SNR estimate, the N/beta rule, and resume."""

from __future__ import annotations

import math

import pytest
import torch

from hil.adaptive import AdaptiveConfig, AdaptiveReads, update_snr
from hil.config import RunConfig, validate_section
from hil.errors import ConfigError
from hil.interface import Measurement
from hil.protocols.train import TrainHooks, prepare_data, topology_for, train
from hil.simulators.twin import TwinCrossbar


def reads(v: torch.Tensor, sigma: float, n: int, gen: torch.Generator) -> Measurement:
    """n white reads of v: their mean and std, as a crossbar returns them."""
    x = v + sigma * torch.randn((n, *v.shape), generator=gen, dtype=torch.float64)
    return Measurement([x.mean(0)], [x.std(0)], n, torch.zeros(n))


def test_update_snr_measures_signal_and_noise():
    """Half the nodes active at 1 V with a +-1e-3 V signal, half off (0 V); sigma 5e-3 V, N = 16.

    Noise of the difference: sigma sqrt(2 / N) = 1.77e-3 V (true SNR 0.57).  The estimate
    S^2 = mean(d^2) - noise^2 over M = 20,000 active entries has variance
    (2 noise^4 + 4 S^2 noise^2) / M, a relative standard error of 4 % on S^2, 2 % on S;
    asserted within 4 standard errors (8 %).  Off nodes average to 0 +- sigma / sqrt(2N) = 8.8e-4 V,
    far below the activity threshold 3 sigma / sqrt(N) = 3.75e-3 V.
    """
    gen = torch.Generator().manual_seed(0)
    b, n_nodes, sigma, n = 200, 200, 5e-3, 16
    h = torch.zeros(b, n_nodes, dtype=torch.float64)
    h[:, : n_nodes // 2] = 1.0
    d = torch.zeros_like(h)
    d[:, : n_nodes // 2] = 1e-3 * torch.where(torch.rand(b, n_nodes // 2, generator=gen) < 0.5, -1.0, 1.0)
    s = update_snr(reads(h, sigma, n, gen), reads(h + d, sigma, n, gen), layer=1)
    assert s.active == pytest.approx(0.5, abs=0.01)
    assert s.read_sigma_v == pytest.approx(sigma, rel=0.02)  # 40,000 x 15 dof: se 0.1 %
    assert s.noise_v == pytest.approx(sigma * math.sqrt(2 / n), rel=0.02)
    assert s.signal_v == pytest.approx(1e-3, rel=0.08)
    assert s.snr == pytest.approx(1e-3 / (sigma * math.sqrt(2 / n)), rel=0.08)


def exact(signal: float, sigma: float, n: int) -> tuple[Measurement, Measurement]:
    """Two reads whose difference is exactly `signal` on every node and whose std is exactly sigma."""
    v = torch.ones(4, 10, dtype=torch.float64)
    std = torch.full_like(v, sigma)
    return (Measurement([v], [std], n, torch.zeros(n)), Measurement([v + signal], [std], n, torch.zeros(n)))


def test_rule_picks_the_smallest_n_that_meets_the_target_then_raises_beta():
    # S = 1e-3 V at beta = 1, sigma = 5e-3 V, target 2: N = 2 (T sigma / S)^2 = 200 > n_max = 64
    cfg = AdaptiveConfig(snr_target=2.0, n_min=2, n_max=64, beta_max=3.0, smoothing=0.0)
    ctl = AdaptiveReads(cfg, beta=1.0, n_start=4, hidden_layers=1)
    assert (ctl.n_samples, ctl.beta) == (4, 1.0)
    # buried: at N = 4 the difference's noise (3.5e-3 V) exceeds the 1e-3 V rms, so the signal
    # estimate is 0: the most reads and the largest beta allowed
    assert ctl.observe(*exact(1e-3, 5e-3, 4), beta_used=1.0) == 0.0
    assert (ctl.n_samples, ctl.beta) == (64, 3.0)
    # a clean signal: S^2 = 4e-4 - 2 sigma^2 / 64, N = ceil(2 T^2 sigma^2 / S^2) = 2, beta back to 1
    ctl = AdaptiveReads(cfg, beta=1.0, n_start=4, hidden_layers=1)
    ctl.observe(*exact(2e-2, 5e-3, 64), beta_used=1.0)
    s2 = 4e-4 - 2 * 25e-6 / 64
    assert (ctl.n_samples, ctl.beta) == (max(2, math.ceil(2 * 4 * 25e-6 / s2)), 1.0)
    # in between: S^2 = 1e-6 needs 2 x 4 x 25e-6 / 1e-6 = 200 reads: N = 64 and beta = sqrt(200 / 64)
    ctl.observe(*exact(math.sqrt(1e-6 + 2 * 25e-6 / 64), 5e-3, 64), beta_used=1.0)
    assert ctl.n_samples == 64 and ctl.beta == pytest.approx(math.sqrt(200 / 64), rel=1e-9)
    # measured at the raised beta, the signal per unit beta is the same: the plan does not move
    ctl.observe(*exact(math.sqrt(ctl.beta**2 * 1e-6 + 2 * 25e-6 / 64), 5e-3, 64), beta_used=ctl.beta)
    assert ctl.n_samples == 64 and ctl.beta == pytest.approx(math.sqrt(200 / 64), rel=1e-9)
    state = ctl.state_dict()
    other = AdaptiveReads(cfg, beta=1.0, n_start=4, hidden_layers=1)
    other.load_state_dict(state)
    assert other.state_dict() == state


def test_config_rejects_n_max_below_n_min_and_single_reads():
    base = {"train": {"adaptive": {"n_min": 8, "n_max": 4}}}
    with pytest.raises(ConfigError, match="train.adaptive: n_max"):
        validate_section(RunConfig, base, "run.yaml")
    with pytest.raises(ConfigError, match="train.adaptive.n_min"):
        validate_section(RunConfig, {"train": {"adaptive": {"n_min": 1}}}, "run.yaml")


class MemoryHooks(TrainHooks):
    """Keeps the last checkpoint in memory; stops (raises) after `stop_after` saves."""

    def __init__(self, state=None, stop_after=None):
        super().__init__()
        self.state, self.saves, self.stop_after, self.rows = state, 0, stop_after, []

    def batch(self, row, running_acc, samples_per_s):
        self.rows.append(row)

    def save(self, state):
        self.state, self.saves = state, self.saves + 1

    def load(self):
        return self.state

    def should_stop(self):
        if self.stop_after is not None and self.saves >= self.stop_after:
            raise KeyboardInterrupt


def run(cfg, data, hooks):
    xbar = TwinCrossbar.from_spec(topology_for(cfg, data.train.images.shape[1]), cfg.crossbar, seed=cfg.seed,
                                  source="test")
    train(xbar, cfg, data, hooks)
    return hooks


def test_adaptive_run_resumes_bit_identical_and_changes_n():
    cfg = validate_section(RunConfig, {
        "data": {"root": "embedded", "train_subset": 96, "test_subset": 20},
        "network": {"hidden": [16]},
        "crossbar": {"kind": "twin", "sigma": 2e-3},
        "train": {"epochs": 2, "batch_size": 4, "checkpoint_every": 5, "n_samples": 2,
                  "adaptive": {"snr_target": 3.0, "n_max": 32, "beta_max": 2.0, "smoothing": 0.5}},
    }, "test")
    data = prepare_data(cfg)
    ref = run(cfg, data, MemoryHooks())
    killed = MemoryHooks(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, data, killed)
    assert killed.state["batch"] == 15 and "adaptive" in killed.state
    resumed = run(cfg, data, MemoryHooks(state=killed.state))
    for name, value in ref.state["params"].items():
        assert torch.equal(resumed.state["params"][name], value), name
    assert resumed.state["adaptive"] == ref.state["adaptive"]
    # the controller moved N off its start and counted every read
    ns = {r["n_samples"] for r in ref.rows}
    assert len(ns) > 1 and max(ns) <= 32
    total = sum(r["n_samples"] * 3 * r["size"] for r in ref.rows)
    assert sum(e["reads"] for e in ref.epochs) == total
