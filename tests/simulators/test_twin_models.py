"""The twin with every model on: seeded runs repeat, a resumed run is bit-identical, the ideal path is untouched."""

from __future__ import annotations

import pytest
import torch

from hil.interface import Nudge, Topology
from hil.simulators.drn import DRNSolver
from hil.simulators.noise import PinkRead
from hil.simulators.twin import TwinConfig, TwinCrossbar

TOP = Topology((8, 6, 3), g_max=2.0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensor ops are far faster on one thread on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

EVERYTHING = dict(
    dtype="float64",
    device="cpu",
    sigma=1e-3,
    read_noise=[
        {"kind": "pink", "amplitude_v": 1e-3, "corner_hz": 10.0},
        {"kind": "telegraph", "amplitude_v": 5e-4, "capture_rate_hz": 1e4, "emission_rate_hz": 2e4},
        {"kind": "adc", "bits": 14, "v_min": -4.0, "v_max": 4.0},
    ],
    devices=[
        {"kind": "range", "g_min": 0.01, "g_max": 1.5, "spread_rel": 0.05},
        {"kind": "write_noise", "sigma_rel": 0.05},
        {"kind": "levels", "n_levels": 64},
        {"kind": "stuck", "p_off": 0.02, "p_on": 0.01},
        {"kind": "drift", "nu": 0.05, "t0_s": 1e-6},
        {"kind": "read_disturb", "rate_per_read": 1e-7},
    ],
    diode="shockley",
    diode_i_s_a=1e-6,
    program_time_s=1e-3,
)


def params(seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"G1": torch.rand(8, 6, generator=gen, dtype=torch.float64),
            "G2": torch.rand(6, 3, generator=gen, dtype=torch.float64),
            "b1": torch.zeros(6, dtype=torch.float64), "b2": torch.zeros(3, dtype=torch.float64)}


def run(xbar: TwinCrossbar, steps: int, seed: int = 2) -> list[torch.Tensor]:
    """A few EP-like steps: free and nudged reads, then a reprogram."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        x = torch.rand(4, 8, generator=gen, dtype=torch.float64)
        free = xbar.measure(x, n_samples=8)
        nudged = xbar.measure(x, nudge=Nudge(0.5, torch.zeros(4, 3, dtype=torch.float64)), n_samples=8)
        out += [free.output, nudged.output]
        g = xbar.read_conductances()
        g["G2"] = (g["G2"] + 0.01 * (free.voltages[0].T @ (nudged.output - free.output))).clamp(0, 2)
        xbar.program(g)
    return out


def test_same_seed_same_run_and_a_resumed_run_is_bit_identical():
    a = TwinCrossbar(TOP, TwinConfig(**EVERYTHING), seed=7)
    b = TwinCrossbar(TOP, TwinConfig(**EVERYTHING), seed=7)
    a.program(params())
    b.program(params())
    ra, rb = run(a, 3), run(b, 3)
    assert all(torch.equal(p, q) for p, q in zip(ra, rb))
    c = TwinCrossbar(TOP, TwinConfig(**EVERYTHING), seed=8)
    c.program(params())
    assert not torch.equal(run(c, 1)[0], ra[0])

    # checkpoint a after 3 steps, run 2 more; a fresh twin resumed from the checkpoint
    # (reprogrammed first, as protocols/train.py does, then load_state_dict) repeats them exactly
    state = a.state_dict()
    achieved = a.read_conductances()
    tail = run(a, 2, seed=3)
    fresh = TwinCrossbar(TOP, TwinConfig(**EVERYTHING), seed=7)
    fresh.program(achieved)
    fresh.load_state_dict(state)
    again = run(fresh, 2, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(tail, again))


def test_default_twin_takes_the_ideal_fast_path():
    xbar = TwinCrossbar(TOP, TwinConfig(sigma=1e-3, device="cpu"))
    assert xbar.devices is None and xbar.solver.diode is None and xbar.read.is_gaussian
    g = {k: v.float() for k, v in params().items()}
    report = xbar.program(g)
    assert all(report.achieved[k] is g[k] for k in g)  # no copies made
    assert set(xbar.state_dict()) == {"generator", "clock_s"}


def test_ideal_switch_matches_the_noiseless_ideal_solver():
    xbar = TwinCrossbar(TOP, TwinConfig(**{**EVERYTHING, "ideal": True}))
    g = params()
    xbar.program(g)
    x = torch.rand(5, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = xbar.measure(x, n_samples=16)
    blocks, biases = [g["G1"], g["G2"]], [g["b1"], g["b2"]]
    ref = DRNSolver(TOP, tol=1e-6).solve(x @ blocks[0], blocks, biases, DRNSolver.denominators(blocks))
    for v, r in zip(m.voltages, ref.states):
        torch.testing.assert_close(v, r)
    assert all(float(s.abs().max()) == 0.0 for s in m.std)


def test_adc_saturation_is_reported():
    adc = {"kind": "adc", "bits": 8, "v_min": -0.01, "v_max": 0.01}
    cfg = TwinConfig(dtype="float64", device="cpu", read_noise=[adc])
    xbar = TwinCrossbar(TOP, cfg)
    xbar.program(params())
    m = xbar.measure(torch.ones(2, 8, dtype=torch.float64), n_samples=4)
    assert m.info["adc_saturated"] > 0


def test_slow_noise_carries_over_between_measure_calls_by_the_clock():
    """Pink noise read in successive measure() calls is correlated as the timestamps say.

    Lag-one correlation of the reading errors, over 300 independent nodes and 150 calls
    one sample period apart, against the model's exact value sum(var_k exp(-rate_k dt)) /
    sum(var_k) = 0.651.  The estimate's scatter over seeds 0-7 is 0.006, so 0.03 is ~5
    sigma; a twin that restarted the noise at each call would give 0.
    After a pause of 1 s (10 corner periods) the correlation must vanish: exp(-2 pi 10 * 1).
    """
    top = Topology((2, 300, 1))
    pink = {"kind": "pink", "amplitude_v": 1e-3, "corner_hz": 10.0, "f_max_hz": 1e4}
    one = lambda t: torch.full(t, 1.0, dtype=torch.float64)  # noqa: E731
    g = {"G1": one((2, 300)), "G2": one((300, 1)), "b1": 0 * one((300,)), "b2": 0 * one((1,))}
    x = torch.tensor([[0.3, -0.1]], dtype=torch.float64)
    exact = TwinCrossbar(top, TwinConfig(dtype="float64", device="cpu"))
    exact.program(g)
    v = exact.measure(x).voltages[0][0]

    def lag_one(pause_s: float, seed: int = 0) -> float:
        xbar = TwinCrossbar(top, TwinConfig(dtype="float64", device="cpu", read_noise=[pink],
                                            sample_period_s=1e-4), seed=seed)
        xbar.program(g)
        errs = []
        for _ in range(150):
            errs.append(xbar.measure(x).voltages[0][0] - v)
            xbar.clock_s += pause_s
        e = torch.stack(errs)
        return float((e[1:] * e[:-1]).sum() / (e**2).sum())

    model = PinkRead(**pink)
    rates, var = model.terms()
    theory = float((var * torch.exp(-rates * 1e-4)).sum() / var.sum())
    assert abs(lag_one(0.0) - theory) < 0.03
    # independent calls: the estimate of 0 has std ~ 1/sqrt(300 * 149) = 0.005; 0.025 is 5 sigma
    assert abs(lag_one(1.0)) < 0.025
