"""Sweep files: grid expansion, trial identity, derived axes, errors; the analyses on known tables."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import yaml

from hil.analysis.sweep_stats import log_crossing, trial_table
from hil.config import apply_overrides
from hil.errors import ConfigError, UserError
from hil.store import Store
from hil.sweep import SweepConfig, config_hash, load_sweep, yaml_value
from hil.sweep_run import pending_trials

HERE = Path(__file__).parent
shipped = functools.cache(load_sweep)  # the paper grids hold thousands of trials: expand each once
TINY = HERE / "tiny.yaml"
SHIPPED = ["noise_sweep-small", "noise_sweep-paper", "clt_sweep-small", "clt_sweep-paper",
           "hyperparam_map-small", "hyperparam_map-paper"]


def test_tiny_expands_to_grid_times_seeds():
    sweep = load_sweep(TINY)
    assert len(sweep.trials) == 6
    assert [t.point for t in sweep.trials[:2]] == [{"crossbar.sigma": 1e-4, "seed": 0},
                                                    {"crossbar.sigma": 1e-4, "seed": 1}]
    cfg = sweep.trials[0].config
    assert cfg["network"]["hidden"] == [128] and cfg["crossbar"]["sigma"] == 1e-4 and cfg["seed"] == 0
    assert len({t.id for t in sweep.trials}) == 6


def test_trial_identity_is_the_resolved_config():
    a, b = load_sweep(TINY), load_sweep(TINY)
    assert a.id == b.id and [t.id for t in a.trials] == [t.id for t in b.trials]
    assert a.trials[0].id == config_hash(a.trials[0].config)
    c = load_sweep(TINY, ["train.batch_size=4"])  # another base: other trials, other sweep
    assert c.id != a.id and not {t.id for t in c.trials} & {t.id for t in a.trials}


@pytest.mark.parametrize("value", [1e-6, 3.0e-4, 1.0, 0.006, 64, "fashion-mnist", [256], True])
def test_yaml_value_round_trips_through_apply_overrides(value):
    assert apply_overrides({}, [f"k={yaml_value(value)}"], "t")["k"] == value
    assert isinstance(yaml.safe_load(yaml_value(1e-6)), float)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sweeps_validate(name):
    sweep = shipped(name)
    assert sweep.trials and all(t.config["crossbar"]["kind"] == "twin" for t in sweep.trials)


def test_paper_grids_are_the_papers():
    noise = shipped("noise_sweep-paper")
    sigmas = sorted({t.config["crossbar"]["sigma"] for t in noise.trials})
    assert math.isclose(sigmas[0], 1e-8) and math.isclose(sigmas[-1], 1e-3)
    assert {t.config["data"]["dataset"] for t in noise.trials} == {"mnist", "fashion-mnist", "kmnist"}
    assert len({t.config["seed"] for t in noise.trials}) == 30
    clt = shipped("clt_sweep-paper")
    assert sorted({t.config["train"]["n_samples"] for t in clt.trials}) == [1, 2, 4, 8, 16, 32, 64]


def test_eta_eff_axis_sets_eta_times_beta():
    sweep = shipped("hyperparam_map-small")
    for t in sweep.trials:
        beta, eta = t.config["train"]["beta"], t.config["train"]["eta"]
        assert math.isclose(eta / beta, t.point["eta_eff"], rel_tol=1e-12)


def _write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "protocol": "noise_sweep", "base": "quickstart", **body}))
    return path


def test_bad_axis_value_names_file_trial_and_key(tmp_path):
    path = _write(tmp_path, {"grid": {"train.batch_size": [4, 0]}})
    with pytest.raises(ConfigError, match=r"s\.yaml \(trial 1: train\.batch_size=0\): train\.batch_size"):
        load_sweep(path)


def test_unknown_key_and_unknown_derived_axis_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="train.bogus: unknown key"):
        load_sweep(_write(tmp_path, {"grid": {"train.bogus": [1, 2]}}))
    with pytest.raises(ConfigError, match="not config key paths"):
        load_sweep(_write(tmp_path, {"grid": {"eta_eff": [0.1]}}))
    with pytest.raises(ConfigError, match="grid"):
        load_sweep(_write(tmp_path, {"grid": {"crossbar.sigma": [0.1, 0.1]}}))
    with pytest.raises(ConfigError, match="seed"):
        load_sweep(_write(tmp_path, {"grid": {"seed": [0]}, "seeds": 2}))
    with pytest.raises(ConfigError, match=r"trial 0: crossbar.sigmaa=0.1\): crossbar.sigmaa: unknown key"):
        load_sweep(_write(tmp_path, {"grid": {"crossbar.sigmaa": [0.1]}}))


def test_where_selects_trials(tmp_path):
    sweep = load_sweep(TINY)
    with Store(tmp_path) as store:
        todo, done = pending_trials(sweep, store, ["crossbar.sigma=1.0"])
        assert len(todo) == 3 and done == 0 and all(t.point["crossbar.sigma"] == 1.0 for t in todo)
        with pytest.raises(UserError, match="not an axis"):
            pending_trials(sweep, store, ["train.eta=1"])
        assert all(r["status"] == "pending" for r in trial_table(sweep, store))


def test_log_crossing():
    xs, ys = [1e-4, 1e-3, 1e-2, 1e-1], [0.9, 0.8, 0.4, 0.1]
    x, how = log_crossing(xs, ys, 0.6)
    assert how == "interpolated" and math.isclose(x, 10 ** -2.5)
    assert log_crossing(xs, ys, 0.95) == (None, "below at the first point")
    assert log_crossing(xs, ys, 0.05) == (1e-1, "never below")


def test_sweep_config_rejects_empty_axis():
    with pytest.raises(ValueError):
        SweepConfig(name="x", protocol="noise_sweep", base="quickstart", grid={"crossbar.sigma": []})


def test_a_worker_caches_data_per_data_config_not_per_dataset():
    """A sweep over data.size (or tile, split, readout) must give each trial its own images."""
    from hil.config import RunConfig, load_config, validate_section
    from hil.sweep_run import trial_data

    _, raw = load_config("digits-32-16-10")
    cfgs = [validate_section(RunConfig, apply_overrides(raw, [f"data.size={k}"], "test"), "test") for k in (4, 2)]
    shapes = [trial_data(cfg, None).train.images.shape[1] for cfg in cfgs]
    assert shapes[0] != shapes[1]
