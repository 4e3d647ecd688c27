"""Device models of the twin's conductances, one test (or more) per model, at fixed seeds.

Statistical tolerances are derived in comments; everything else is exact.
"""

from __future__ import annotations

import math

import pytest
import torch

from hil.errors import ConfigError
from hil.interface import Crossbar, Topology
from hil.simulators.devices import SupportsPulses, WriteNoise, write_verify
from hil.simulators.twin import TwinConfig, TwinCrossbar

TOP = Topology((200, 200, 2), g_max=10.0)  # 40 000 cells in G1
CELLS = 200 * 200


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensor ops are far faster on one thread on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def twin(devices, top=TOP, seed=0, **kw) -> TwinCrossbar:
    return TwinCrossbar(top, TwinConfig(dtype="float64", device="cpu", devices=devices, **kw), seed=seed)


def const(value: float, top=TOP) -> dict[str, torch.Tensor]:
    g = {n: torch.full(s, value, dtype=torch.float64) for n, s in top.blocks.items()}
    return {**g, **{n: torch.zeros(k, dtype=torch.float64) for n, k in top.biases.items()}}


def test_write_noise_std_absolute_and_relative():
    xbar = twin([{"kind": "write_noise", "sigma_abs": 0.01, "sigma_rel": 0.1}])
    report = xbar.program(const(0.5), verify=False)
    err = report.achieved["G1"] - 0.5
    # std = sqrt(0.01^2 + (0.1 * 0.5)^2); the sample std of 40 000 normals has relative
    # standard error 1/sqrt(2 * 40 000) = 0.35 %, so 2 % is ~6 sigma; the mean is 0 within
    # 4 sigma / sqrt(40 000) = 2 % of sigma.  The range [0, 10] is > 9 sigma away: no clipping.
    sigma = math.hypot(0.01, 0.05)
    assert float(err.std()) == pytest.approx(sigma, rel=0.02)
    assert abs(float(err.mean())) < 0.02 * sigma
    assert report.requested["G1"] is not report.achieved["G1"] and report.n_clipped == 0


def test_write_noise_polynomial_in_g():
    model = WriteNoise(poly=[0.01, 0.02, 0.1])
    assert float(model.std(torch.tensor(0.5))) == pytest.approx(0.01 + 0.02 * 0.5 + 0.1 * 0.25)
    xbar = twin([model.model_dump()])
    g = const(0.5)
    g["G1"][:100] = 2.0  # half the cells at 2.0: std 0.01 + 0.04 + 0.4 = 0.45
    err = xbar.program(g, verify=False).achieved["G1"] - g["G1"]
    # 20 000 cells per level: relative standard error of the std 0.5 %; 3 % is 6 sigma.  At
    # g = 2 the bound g_min = 0 is 4.4 sigma away: the clip removes < 1e-5 of the mass.
    assert float(err[100:].std()) == pytest.approx(0.045, rel=0.03)
    assert float(err[:100].std()) == pytest.approx(0.45, rel=0.03)


def test_levels_round_to_the_nearest_of_n():
    top = Topology((50, 40, 2), g_max=1.0)
    xbar = twin([{"kind": "levels", "n_levels": 16}], top=top)
    g = const(0.0, top)
    g["G1"] = torch.rand(50, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = xbar.program(g).achieved["G1"]
    step = 1.0 / 15
    k = got / step
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-9)  # on the grid
    assert (got - g["G1"]).abs().max() <= step / 2 + 1e-12  # the nearest level
    assert len(torch.unique(k.round())) == 16


def test_range_spread_clips_each_cell_to_its_own_bounds():
    xbar = twin([{"kind": "range", "g_min": 0.1, "g_max": 1.0, "spread_rel": 0.05}])
    report = xbar.program(const(5.0))
    hi = report.achieved["G1"]
    # every request is above every cell's g_max: all clipped, each to its own bound
    assert report.clipped["G1"] == CELLS and report.clipped["G2"] == 400
    # g_max (1 + 0.05 z): relative std 0.05 within 2 % (standard error 0.35 %, ~6 sigma),
    # mean 1.0 within 4 * 0.05 / sqrt(40 000) = 0.1 %
    assert float(hi.std() / hi.mean()) == pytest.approx(0.05, rel=0.02)
    assert float(hi.mean()) == pytest.approx(1.0, abs=1e-3)
    lo = xbar.program(const(0.0)).achieved["G1"]
    assert float(lo.mean()) == pytest.approx(0.1, abs=1e-4) and bool((lo <= hi).all())


def test_stuck_cells_stay_and_are_reported_failed():
    xbar = twin([{"kind": "stuck", "p_off": 0.1, "p_on": 0.05}])
    report = xbar.program(const(3.0), verify=False)
    g = report.achieved["G1"]
    off, on = int((g == 0.0).sum()), int((g == 10.0).sum())
    # binomial counts: 4000 +- 60 and 2000 +- 44; 4 sigma is 240 and 176
    assert abs(off - 0.1 * CELLS) < 240 and abs(on - 0.05 * CELLS) < 176
    assert report.failed["G1"] == off + on  # every stuck cell misses 3.0
    again = xbar.program(const(7.0), verify=False).achieved["G1"]
    assert torch.equal(again == 0.0, g == 0.0) and torch.equal(again == 10.0, g == 10.0)


def test_verify_rewrites_cells_outside_the_tolerance():
    devices = [{"kind": "write_noise", "sigma_rel": 0.1}]
    policy = {"tol_rel": 0.05, "max_passes": 10}
    plain = twin(devices, verify=policy).program(const(1.0), verify=False)
    checked = twin(devices, verify=policy).program(const(1.0), verify=True)
    miss = lambda g: int(((g - 1.0).abs() > 0.05).sum())  # noqa: E731
    # One write misses (|0.1 z| > 0.05) with P(|z| > 0.5) = 0.617: 24 680 +- 97 (binomial) cells,
    # so 2 % is 5 sigma.  With 10 rewrite passes a cell misses 11 times: 0.617^11 = 0.49 %,
    # 196 +- 14 cells, so +-60 is 4 sigma.
    assert miss(plain.achieved["G1"]) == pytest.approx(0.617 * CELLS, rel=0.02)
    assert checked.failed["G1"] == miss(checked.achieved["G1"])
    assert checked.failed["G1"] == pytest.approx(0.617**11 * CELLS, abs=60)
    assert checked.writes > plain.writes


def test_drift_follows_the_power_law():
    xbar = twin([{"kind": "drift", "nu": 0.1, "t0_s": 1.0}])
    g0 = xbar.program(const(2.0)).achieved["G1"]
    ts = [0.5, 1.0, 10.0, 100.0, 1000.0]
    seen = []
    for t in ts:
        xbar.clock_s = t  # the twin's clock (s); programmed at 0
        seen.append(float(xbar.read_conductances()["G1"].mean()))
    assert seen[0] == seen[1] == float(g0.mean())  # no drift before t0
    logs = torch.log(torch.tensor(seen[2:], dtype=torch.float64))
    slope = float((logs[-1] - logs[0]) / math.log(100.0))
    assert slope == pytest.approx(-0.1, abs=1e-9)  # g = g0 (t/t0)^-nu exactly


def test_drift_exponent_spread_and_solver_sees_it():
    xbar = twin([{"kind": "drift", "nu": 0.05, "nu_spread": 0.01, "t0_s": 1.0}])
    xbar.program(const(1.0))
    xbar.clock_s = math.e  # ln(t/t0) = 1, so -ln g = nu per cell
    nu = -torch.log(xbar.read_conductances()["G1"])
    # per-cell nu ~ N(0.05, 0.01^2) (clamped at 0, 5 sigma away): mean within 4 * 0.01/200
    assert float(nu.mean()) == pytest.approx(0.05, abs=2e-4)
    assert float(nu.std()) == pytest.approx(0.01, rel=0.02)
    x = torch.ones(1, 200, dtype=torch.float64)
    before = xbar.measure(x).voltages[0]
    xbar.clock_s = 1e6
    assert not torch.equal(xbar.measure(x).voltages[0], before)  # the solver uses the drifted g


def test_read_disturb_moves_cells_per_read():
    top = Topology((4, 4, 2), g_max=1.0)
    xbar = twin([{"kind": "read_disturb", "rate_per_read": 1e-3, "toward": "g_min"}], top=top)
    xbar.program(const(0.8, top))
    xbar.measure(torch.ones(5, 4, dtype=torch.float64), n_samples=20)  # 5 x 20 = 100 reads
    g = xbar.read_conductances()["G1"]
    torch.testing.assert_close(g, torch.full_like(g, 0.8 * (1 - 1e-3) ** 100), rtol=1e-12, atol=0)
    up = twin([{"kind": "read_disturb", "rate_per_read": 1e-3, "toward": "g_max"}], top=top)
    up.program(const(0.8, top))
    up.measure(torch.ones(1, 4, dtype=torch.float64), n_samples=10)
    expected = torch.full((4, 2), 1 - 0.2 * (1 - 1e-3) ** 10, dtype=torch.float64)
    torch.testing.assert_close(up.read_conductances()["G2"], expected)


def test_pulses_change_g_as_a_function_of_g():
    top = Topology((3, 4, 2), g_max=1.0)
    xbar = twin([{"kind": "pulse", "alpha_set": 0.1, "alpha_reset": 0.2, "v_threshold_v": 0.5, "v_ref_v": 1.5}],
                top=top)
    assert isinstance(xbar, SupportsPulses) and isinstance(xbar, Crossbar)
    xbar.program(const(0.0, top))
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0] = True
    xbar.pulse("G1", mask, +1, 1.5, n=5)  # soft bound: g_max - (g_max - g) 0.9^5
    g = xbar.read_conductances()["G1"]
    torch.testing.assert_close(g[0], torch.full((4,), 1 - 0.9**5, dtype=torch.float64))
    assert bool((g[1:] == 0).all())
    xbar.pulse("G1", mask, -1, 1.0, n=1)  # half strength: (1.0 - 0.5) / (1.5 - 0.5)
    torch.testing.assert_close(xbar.read_conductances()["G1"][0], g[0] * (1 - 0.2 * 0.5))
    before = xbar.read_conductances()["G1"]
    xbar.pulse("G1", mask, +1, 0.4)  # below threshold: nothing
    assert torch.equal(xbar.read_conductances()["G1"], before)


def test_write_verify_by_pulses_runs_on_the_twin():
    top = Topology((6, 6, 2), g_max=1.0)
    xbar = twin([{"kind": "pulse", "alpha_set": 0.05, "alpha_reset": 0.05, "noise_rel": 0.3},
                 {"kind": "range", "g_min": 0.0, "g_max": 1.0, "spread_rel": 0.05}], top=top, seed=3)
    target = 0.2 + 0.6 * torch.rand(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g, rounds = write_verify(xbar, "G1", target, tol=0.02, max_pulses=300)
    assert (g - target).abs().max() <= 0.02 and rounds < 300


def test_pulse_needs_a_pulse_model():
    xbar = twin([{"kind": "write_noise", "sigma_abs": 0.01}])
    with pytest.raises(ConfigError, match="pulse"):
        xbar.pulse("G1", torch.ones(200, 200, dtype=torch.bool), +1, 1.0)


def test_models_that_need_a_finite_range_say_so():
    with pytest.raises(ConfigError, match="g_max"):
        TwinCrossbar(Topology((2, 2, 1)), TwinConfig(devices=[{"kind": "levels", "n_levels": 4}]))
