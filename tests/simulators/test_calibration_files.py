"""Calibration YAML: any mix of models round-trips, errors name file and key, the twin loads it."""

from __future__ import annotations

import textwrap

import pytest
import torch

from hil.errors import ConfigError
from hil.interface import Topology
from hil.simulators.calibration import Calibration, load_calibration, save_calibration
from hil.simulators.devices import Drift, Levels, WriteNoise
from hil.simulators.noise import AdcQuantization, GaussianRead, PinkRead, TelegraphRead
from hil.simulators.twin import TwinConfig, TwinCrossbar

EXAMPLE = textwrap.dedent(
    """\
    version: 1
    description: board B3, 2026-11-20, protocols/characterize
    meta: {station: lab-a, operator: jd}
    read_noise:
      - {kind: gaussian, sigma_v: 1.0e-4}
      - {kind: pink, amplitude_v: 2.0e-5, corner_hz: 0.1, f_max_hz: 1.0e5}
      - {kind: telegraph, amplitude_v: 5.0e-5, capture_rate_hz: 30, emission_rate_hz: 80}
      - {kind: telegraph, amplitude_v: -2.0e-5, capture_rate_hz: 3, emission_rate_hz: 1}
      - {kind: adc, bits: 16, v_min: -2.0, v_max: 2.0}
    devices:
      - {kind: range, g_min: 0.01, g_max: 1.0, spread_rel: 0.03}
      - {kind: write_noise, sigma_abs: 0.002, sigma_rel: 0.02, poly: [0.0, 0.01]}
      - {kind: levels, n_levels: 64}
      - {kind: stuck, p_off: 0.001, p_on: 0.0005}
      - {kind: drift, nu: 0.02, nu_spread: 0.005, t0_s: 10.0}
      - {kind: read_disturb, rate_per_read: 1.0e-9, toward: g_min}
      - {kind: pulse, alpha_set: 0.05, alpha_reset: 0.08, v_threshold_v: 0.4, v_ref_v: 1.2, noise_rel: 0.2}
    """
)


def test_any_mix_round_trips(tmp_path):
    path = tmp_path / "cal.yaml"
    path.write_text(EXAMPLE)
    cal = load_calibration(path)
    assert [type(m) for m in cal.read_noise] == [GaussianRead, PinkRead, TelegraphRead, TelegraphRead, AdcQuantization]
    assert len(cal.devices) == 7 and cal.meta["station"] == "lab-a"
    again = load_calibration(save_calibration(cal, tmp_path / "sub" / "copy.yaml"))
    assert again == cal
    built = Calibration(read_noise=[PinkRead(amplitude_v=1e-5, corner_hz=1.0)], devices=[Levels(n_levels=8)])
    assert Calibration.from_yaml(built.to_yaml()) == built


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ("read_noise:\n  - {kind: pink, amplitude_v: 1.0e-5}\n", "read_noise.0.corner_hz: Field required"),
        ("read_noise:\n  - {kind: brown, sigma_v: 1.0}\n", "read_noise.0"),
        ("devices:\n  - {kind: drift, nu: 0.1, t0: 1}\n", "devices.0.t0: unknown key"),
        ("devices:\n  - {kind: levels, n_levels: 4}\n  - {kind: levels, n_levels: 8}\n",
         "devices: at most one device model of each kind"),
        ("read_noise:\n  - {kind: adc, bits: 8, v_min: 1, v_max: -1}\n", "read_noise.0: "),
        ("version: 2\n", "version"),
        ("noise: []\n", "noise: unknown key"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path, bad, where):
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(ConfigError) as exc:
        load_calibration(path)
    assert str(exc.value).startswith(f"{path}: ") and where in str(exc.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_calibration(tmp_path / "nope.yaml")


def test_twin_loads_a_calibration_relative_to_its_config(tmp_path):
    (tmp_path / "cal.yaml").write_text(EXAMPLE)
    config = tmp_path / "run.yaml"
    config.write_text("crossbar: {kind: twin, calibration: cal.yaml}\n")
    top = Topology((4, 4, 2))
    spec = {"kind": "twin", "device": "cpu", "calibration": "cal.yaml", "devices": [{"kind": "levels", "n_levels": 4}]}
    xbar = TwinCrossbar.from_spec(top, spec, seed=0, source=str(config))
    kinds = [m.kind for m in xbar.read.models]
    assert kinds == ["gaussian", "pink", "telegraph", "telegraph", "adc"]
    assert xbar.devices is not None and xbar.devices.levels == Levels(n_levels=4)  # the config's own wins
    assert xbar.devices.drift == Drift(nu=0.02, nu_spread=0.005, t0_s=10.0)
    assert xbar.devices.write == WriteNoise(sigma_abs=0.002, sigma_rel=0.02, poly=[0.0, 0.01])
    with pytest.raises(ConfigError, match=r"elsewhere\.yaml: no such file"):
        TwinCrossbar.from_spec(top, {"calibration": "elsewhere.yaml"}, seed=0, source=str(config))


def test_twin_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"run.yaml: crossbar.diode"):
        TwinCrossbar.from_spec(Topology((2, 2, 1)), {"diode": "zener"}, seed=0, source="run.yaml")
    with pytest.raises(ConfigError, match=r"run.yaml: crossbar.devices.0.sigma_rel"):
        TwinCrossbar.from_spec(
            Topology((2, 2, 1)), {"devices": [{"kind": "write_noise", "sigma_rel": -1}]}, seed=0, source="run.yaml"
        )


def test_ideal_switch_turns_the_calibration_off(tmp_path):
    (tmp_path / "cal.yaml").write_text(EXAMPLE)
    top = Topology((4, 4, 2))
    xbar = TwinCrossbar(top, TwinConfig(calibration=str(tmp_path / "cal.yaml"), ideal=True, device="cpu", sigma=1e-3,
                                        diode="shockley"))
    assert xbar.read.is_noiseless and xbar.devices is None and xbar.solver.diode is None
    g = {"G1": torch.rand(4, 4), "G2": torch.rand(4, 2), "b1": torch.zeros(4), "b2": torch.zeros(2)}
    report = xbar.program(g)
    assert all(report.achieved[k] is g[k] for k in g)
