"""Round trip on the twin: set known noise and device parameters, characterize, recover them.

The twin being measured is the one of `protocols/configs/characterize-twin.yaml`
(seed 0), read through the protocols exactly as a board would be: the fitters see
only `Measurement`s and `ProgramReport`s / `read_conductances()`.

Tolerances (what the issue asks, and why they hold with margin at this seed):

- white sigma, 5 %: the Welch white level rests on ~N/2 frequency bins of
  ~2N/nperseg segments, so its relative error is ~1/sqrt(N) per node, and sigma's
  half of that: 0.5 % at N = 16384 (the fit reports it; asserted < 1 %).  Biases:
  the pink model's roll-off just below its f_max (set to Nyquist) removes < 1 % of
  the white level near Nyquist; in all < 0.5 % in sigma.  5 % is > 10 errors.
- 1/f amplitude A, 15 %: its bins are the few below the 1/f corner (100 Hz), the
  fit reports ~3.5 % per node (asserted < 5 %), the median of three nodes is
  used; the model's sum of Lorentzians (3 per decade) ripples by a few % about A^2/f,
  and the linear detrend touches only f < 1/T (below the first Welch bin).
- write noise, 15 %: each of 12 targets pools ~40 cells x 15 dof (16 repeats) = 600
  dof, so each std is known to 1/sqrt(1200) = 3 %; the fit's standard errors of
  sigma_abs and sigma_rel come out below 5 % (asserted), so 15 % is > 3 of them.
- range, 15 %: g_min and g_max are means over 512 cells of bounds with 5 % spread,
  each found exactly (a write aimed outside lands on the bound in half the repeats,
  and 16 repeats all miss it with probability 2^-16): error ~0.2 %.  The spread is the
  std of 512 bounds: 1/sqrt(2 x 512) = 3 %.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from hil.commands.characterize import FORMAT_VERSION as WRITTEN
from hil.commands.characterize import calibration_yaml
from hil.protocols.calibrate import calibrate_write
from hil.protocols.characterize_noise import characterize_read, load_characterize_config, topology_for
from hil.registry import open_crossbar
from hil.simulators.calibration import FORMAT_VERSION, Calibration
from hil.simulators.twin import TwinConfig, TwinCrossbar


@pytest.fixture(scope="module")
def setup():
    cfg, _, source = load_characterize_config("twin", ["read.n_reads=16384"])
    return cfg, source, topology_for(cfg, source)


def _set(cfg):
    cb = cfg.crossbar
    pink = next(m for m in cb["read_noise"] if m["kind"] == "pink")
    dev = {d["kind"]: d for d in cb["devices"]}
    return cb["sigma"], pink["amplitude_v"], dev["write_noise"], dev["range"]


@pytest.fixture(scope="module")
def read_result(setup):
    cfg, source, topo = setup
    with open_crossbar(topo, cfg.crossbar, seed=cfg.seed, source=source) as xbar:
        return characterize_read(xbar, cfg)


@pytest.fixture(scope="module")
def write_result(setup):
    """Programming on the same twin without its 1/f read noise, only to keep the test fast: the
    write fits never see read noise (the twin's read_conductances() is exact), but the drift hold
    reads the held inputs, and 1/f noise costs explicit draws per sample."""
    cfg, source, topo = setup
    cfg = cfg.model_copy(update={"crossbar": {**cfg.crossbar, "read_noise": []}})
    with open_crossbar(topo, cfg.crossbar, seed=cfg.seed, source=source) as xbar:
        return calibrate_write(xbar, cfg)


def test_white_sigma_within_5_percent(setup, read_result):
    sigma, _, _, _ = _set(setup[0])
    for node in read_result.nodes:
        assert node.fit.sigma_rel_err < 0.01
        assert node.fit.sigma_v == pytest.approx(sigma, rel=0.05)
    assert read_result.combined["white_sigma_v"] == pytest.approx(sigma, rel=0.05)
    assert read_result.dt_s == pytest.approx(setup[0].crossbar["sample_period_s"], rel=1e-9)


def test_pink_amplitude_within_15_percent(setup, read_result):
    _, amp, _, _ = _set(setup[0])
    for node in read_result.nodes:
        assert node.fit.amplitude_rel_err < 0.05
    assert read_result.combined["pink_amplitude_v"] == pytest.approx(amp, rel=0.15)
    assert not any(n.telegraph.bimodal for n in read_result.nodes)


def test_recommendation_meets_the_target(setup, read_result):
    cfg = setup[0]
    sigma, amp, _, _ = _set(cfg)
    rec = read_result.recommendation
    floor = math.sqrt(2 * math.log(2)) * amp
    exact = math.ceil(sigma**2 / (cfg.recommend.target_v**2 - floor**2))  # with the set parameters
    assert rec.reachable and abs(rec.n_samples - exact) <= 1
    assert rec.measured_sigma_eff_v is not None and rec.measured_sigma_eff_v < 1.05 * cfg.recommend.target_v
    assert rec.time_per_batch_s == pytest.approx(
        rec.n_samples * cfg.crossbar["sample_period_s"] * cfg.recommend.phases * cfg.recommend.batch_size)


def test_write_noise_within_15_percent(setup, write_result):
    _, _, wn_set, _ = _set(setup[0])
    wn = write_result.fits["write_noise"]
    assert wn["sigma_abs_err"] < 0.05 * wn_set["sigma_abs"] and wn["sigma_rel_err"] < 0.05 * wn_set["sigma_rel"]
    assert wn["sigma_abs"] == pytest.approx(wn_set["sigma_abs"], rel=0.15)
    assert wn["sigma_rel"] == pytest.approx(wn_set["sigma_rel"], rel=0.15)


def test_range_within_15_percent(setup, write_result):
    _, _, _, rng_set = _set(setup[0])
    rng = write_result.fits["range"]
    assert rng["upper_found"]
    for key in ("g_min", "g_max", "spread_rel"):
        assert rng[key] == pytest.approx(rng_set[key], rel=0.15), key
    drift = write_result.fits["drift"]
    dset = next(d for d in setup[0].crossbar["devices"] if d["kind"] == "drift")
    assert drift["nu"] == pytest.approx(dset["nu"], rel=0.15)
    assert drift["t0_s"] == pytest.approx(dset["t0_s"], rel=0.15)


def test_calibration_file_loads_into_the_twin(setup, read_result, write_result, tmp_path):
    """The file `hil calibrate` writes is exactly what the twin loads, and the twin then runs."""
    assert WRITTEN == FORMAT_VERSION
    cfg, source, topo = setup
    text = calibration_yaml(cfg, "run-x", source, read_result, write_result)
    cal = Calibration.from_yaml(text, "calibration.yaml")
    assert [m.kind for m in cal.read_noise] == ["gaussian", "pink"]
    assert {m.kind for m in cal.devices} == {"write_noise", "range", "drift"}
    path = tmp_path / "calibration.yaml"
    path.write_text(text)
    body = yaml.safe_load(text)
    twin = TwinCrossbar(topo, TwinConfig(calibration=str(path), sample_period_s=body["meta"]["sample_period_s"]))
    assert twin.devices is not None and twin.read.sigma_v == pytest.approx(read_result.combined["white_sigma_v"])
    m = twin.measure(torch.zeros((1, topo.n_in)), n_samples=8)
    assert m.std[0].shape == (1, topo.layers[1])


def test_levels_and_stuck_cells_recovered(setup):
    """Levels (32 per cell range) and stuck cells, on a twin without read noise (fast).

    Stuck cells are compared with the cells the twin actually drew (512 cells: the
    drawn fractions differ from p_off, p_on by binomial noise), the count of levels
    exactly: with write noise 0.005 and a level step 0.03, 16 repeats leave 0.0013 of
    noise on each mean, far below the +-0.015 rounding that reveals the levels.
    """
    cfg, source, topo = setup
    devices = [{"kind": "write_noise", "sigma_abs": 0.005, "sigma_rel": 0.0},
               {"kind": "range", "g_min": 0.05, "g_max": 1.0, "spread_rel": 0.05},
               {"kind": "stuck", "p_off": 0.02, "p_on": 0.01}, {"kind": "levels", "n_levels": 32}]
    cfg = cfg.model_copy(update={"crossbar": {**cfg.crossbar, "read_noise": [], "devices": devices}})
    with open_crossbar(topo, cfg.crossbar, seed=cfg.seed, source=source) as xbar:
        got = {d["kind"]: d for d in calibrate_write(xbar, cfg).devices}
        drawn = xbar.devices.stuck_code[cfg.write.block]
    assert got["levels"]["n_levels"] == 32
    assert got["stuck"]["p_off"] == pytest.approx(float((drawn == 1).float().mean()))
    assert got["stuck"]["p_on"] == pytest.approx(float((drawn == 2).float().mean()))
    assert got["write_noise"]["sigma_abs"] == pytest.approx(0.005, rel=0.15)


def test_telegraph_recovered_where_the_histogram_is_bimodal(setup):
    """White noise plus one telegraph trap per node (amplitude 4 sigma), no 1/f, no devices.

    65,536 reads at 10 kS/s hold ~6.5 s x 2 / (1/30 + 1/80) s ~ 290 transitions per
    node, so each rate is known to ~1/sqrt(145) = 8 % per node and ~5 % as the
    median of three nodes: 15 % is 3 of those.  The amplitude is a difference of
    two level means over ~20,000 reads each: well under 1 %.  White sigma stays
    within 5 % once the steps are subtracted.
    """
    cfg, source, topo = setup
    tel = {"kind": "telegraph", "amplitude_v": 4.0e-4, "capture_rate_hz": 30.0, "emission_rate_hz": 80.0}
    cfg = cfg.model_copy(update={
        "crossbar": {**cfg.crossbar, "read_noise": [tel], "devices": []},
        "read": cfg.read.model_copy(update={"n_reads": 65536}),
    })
    with open_crossbar(topo, cfg.crossbar, seed=cfg.seed, source=source) as xbar:
        res = characterize_read(xbar, cfg)
    assert all(n.telegraph.bimodal for n in res.nodes)
    c = res.combined
    assert c["telegraph_amplitude_v"] == pytest.approx(4.0e-4, rel=0.15)
    assert c["telegraph_capture_rate_hz"] == pytest.approx(30.0, rel=0.15)
    assert c["telegraph_emission_rate_hz"] == pytest.approx(80.0, rel=0.15)
    assert c["white_sigma_v"] == pytest.approx(cfg.crossbar["sigma"], rel=0.05)
    assert [e["kind"] for e in res.read_noise] == ["gaussian", "telegraph"]
    # the trap's variance averages away only past its correlation time (~9 ms): N grows accordingly
    rec = res.recommendation
    assert rec.reachable and rec.sigma_eff_v <= cfg.recommend.target_v
    assert rec.n_samples > math.ceil((cfg.crossbar["sigma"] / cfg.recommend.target_v) ** 2)
