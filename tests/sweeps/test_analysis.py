"""The protocols' analyses and the paper figures, on synthetic trial tables (no training)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hil.commands.plot import make_figure
from hil.errors import UserError
from hil.protocols import clt_sweep, noise_sweep
from hil.store import Store
from hil.sweep import SweepConfig, load_sweep
from hil.sweep_run import register_sweep


def _row(i, acc, **kw):
    base = {"trial": i, "trial_id": str(i), "dataset": "mnist", "sigma": 1e-3, "n_samples": 1, "beta": 1.0,
            "eta": 0.006, "eta_eff": 0.006, "seed": 0, "status": "completed", "final_test_acc": acc,
            "best_test_acc": acc, "converged": None, "wall_s": 1.0, "error": None}
    return {**base, **kw}


def test_noise_sweep_stages_intervals_and_ratio():
    cfg = SweepConfig(name="n", protocol="noise_sweep", base="quickstart", grid={"seed": [0]}, converged_acc=0.5)
    sig = [1e-5, 1e-4, 1e-3, 1e-2]
    table, i = [], 0
    for ds, accs in {"mnist": [0.9, 0.9, 0.3, 0.1], "fashion-mnist": [0.7, 0.1, 0.1, 0.1]}.items():
        for s, a in zip(sig, accs, strict=True):
            for seed in range(3):
                table.append(_row(i, a + 0.01 * seed, dataset=ds, sigma=s, seed=seed))
                i += 1
    table.append(_row(i, None, status="failed", error="boom", sigma=1e-5))
    out = noise_sweep.analyze(table, cfg, n_boot=200)
    first = next(r for r in out["summary"] if r["dataset"] == "mnist" and r["sigma"] == 1e-5)
    assert first["n"] == 4 and first["n_failed"] == 1 and first["frac_converged"] == 0.75
    # Wilson 95 % interval of 3/4 (textbook value: 0.3006 .. 0.9544)
    assert first["converged_lo"] == pytest.approx(0.3006, abs=1e-4)
    assert first["converged_hi"] == pytest.approx(0.9544, abs=1e-4)
    # mnist means 0.91, 0.91, 0.31, 0.11: onset level 0.86 and collapse level 0.505 are crossed
    # between 1e-4 and 1e-3, at log10 sigma = -4 + 0.05/0.6 and -4 + 0.405/0.6
    st = out["stages"]["mnist"]
    assert st["plateau_acc"] == pytest.approx(0.91)
    assert st["sigma_onset"] == pytest.approx(10 ** (-4 + 0.05 / 0.6))
    assert st["sigma_collapse"] == pytest.approx(10 ** (-4 + 0.405 / 0.6))
    mid = (math.log10(st["sigma_onset"]) + math.log10(st["sigma_collapse"])) / 2 + 4  # in decades above 1e-4
    assert st["shoulder_acc"] == pytest.approx(0.91 - 0.6 * mid)
    ci = st["sigma_onset_ci"]
    assert ci["n_valid"] == 200 and ci["lo"] <= st["sigma_onset"] <= ci["hi"]
    # fashion-mnist falls below both levels between 1e-5 and 1e-4
    fm = out["stages"]["fashion-mnist"]
    assert 1e-5 < fm["sigma_onset"] < fm["sigma_collapse"] < 1e-4
    r = out["ratios"]["sigma_onset fashion-mnist/mnist"]
    assert r["ratio"] == pytest.approx(fm["sigma_onset"] / st["sigma_onset"])
    assert r["ci"]["lo"] <= r["ratio"] <= r["ci"]["hi"]


def test_stages_report_a_crossing_off_the_grid():
    from hil.analysis.sweep_stats import stages

    st = stages([1e-6, 1e-5, 1e-4], [0.9, 0.9, 0.88], chance=0.1, onset_drop=0.05)
    assert st["onset_how"] == "never below" and st["sigma_onset"] == 1e-4  # a lower bound
    assert st["shoulder_acc"] is None


def test_clt_recovers_a_square_root_law():
    """Accuracy a function of sigma / sqrt(N) only: the fitted slope is 1/2."""
    cfg = SweepConfig(name="c", protocol="clt_sweep", base="quickstart", grid={"seed": [0]}, target_acc=0.8)
    sigmas = np.logspace(-4, -1, 13)
    table, i = [], 0
    rng = np.random.default_rng(0)
    for n in (1, 2, 4, 8, 16, 32, 64):
        for s in sigmas:
            for seed in range(3):
                eff = s / math.sqrt(n)
                acc = 0.1 + 0.8 / (1 + (eff / 1e-3) ** 2) + 0.003 * rng.standard_normal()
                table.append(_row(i, acc, n_samples=n, sigma=float(s), seed=seed))
                i += 1
    out = clt_sweep.analyze(table, cfg, n_boot=50)
    fit = out["fit"]
    assert fit["n_points"] == 7
    assert abs(fit["slope"] - 0.5) < 0.05 and fit["stderr"] < 0.05 and fit["bootstrap_std"] < 0.1


def _fake_sweep(store: Store, name: str, acc_of) -> str:
    sweep = load_sweep(name)
    register_sweep(sweep, store)
    for t in sweep.trials:
        acc = acc_of(t.config)
        store.put_trial({"sweep_id": sweep.id, "trial_id": t.id, "idx": t.index, "point": t.point,
                         "config": t.config, "status": "completed", "wall_s": 1.0, "worker": "w",
                         "result": {"final_test_acc": acc, "best_test_acc": acc, "wall_s": 1.0, "epochs": []}})
    return sweep.id


def _acc(cfg):
    eff = cfg["crossbar"]["sigma"] / math.sqrt(cfg["train"]["n_samples"])
    return 0.1 + 0.8 / (1 + (eff / 3e-3) ** 2) + 0.01 * (cfg["seed"] % 3)


@pytest.mark.parametrize("figure,sweep", [("fig3", "noise_sweep-small"), ("fig4", "clt_sweep-small"),
                                          ("fig5", "hyperparam_map-small")])
def test_figures_are_written(tmp_path: Path, figure, sweep):
    with Store(tmp_path / "ws") as store:
        sweep_id = _fake_sweep(store, sweep, _acc)
        analysis, paths = make_figure(figure, sweep_id[:12], store, tmp_path / "out")
    for suffix in (".png", ".pdf", ".csv", ".json"):
        path = tmp_path / "out" / f"{figure}{suffix}"
        assert path in paths and path.stat().st_size > 100
    assert (tmp_path / "out" / f"{figure}-trials.csv").read_text().count("\n") == len(load_sweep(sweep).trials) + 1
    if figure == "fig4":
        assert analysis["fit"]["slope"] is not None


def test_wrong_figure_for_the_sweep_is_an_error(tmp_path):
    with Store(tmp_path) as store:
        sweep_id = _fake_sweep(store, "noise_sweep-small", _acc)
        with pytest.raises(UserError, match="fig4 shows a clt_sweep sweep"):
            make_figure("fig4", sweep_id, store, tmp_path)


def test_fig3_re_analyses_its_own_trials_csv(tmp_path):
    with Store(tmp_path / "ws") as store:
        sweep_id = _fake_sweep(store, "noise_sweep-small", _acc)
        first, _ = make_figure("fig3", sweep_id, store, tmp_path / "a")
        again, paths = make_figure("fig3", "noise_sweep-small", store, tmp_path / "b",
                                   trials_csv=tmp_path / "a" / "fig3-trials.csv", predicted={"mnist": 1e-3})
    # the CSV keeps 6 significant digits
    assert again["stages"]["mnist"]["sigma_onset"] == pytest.approx(first["stages"]["mnist"]["sigma_onset"], rel=1e-4)
    assert [r["mean_acc"] for r in again["summary"]] == pytest.approx([r["mean_acc"] for r in first["summary"]],
                                                                      rel=1e-5)
    assert again["predicted_onset"] == {"mnist": 1e-3} and (tmp_path / "b" / "fig3.png") in paths


def test_analysis_repeats_the_diagnostics_snr_crit():
    from hil.diagnostics import DEFAULT_SNR_CRIT, REF_BATCH

    assert (noise_sweep.SNR_CRIT, noise_sweep.REF_BATCH) == (DEFAULT_SNR_CRIT, REF_BATCH)


def test_predicted_onset_carries_sqrt_of_the_batch():
    """Same signal at batch 4 and 32: the batch-32 curve's update averages 8x the reads, sqrt(8) higher."""
    table = [{"status": "completed", "dataset": "mnist", "sigma": 1e-6, "n_samples": 1, "seed": s,
              "train.batch_size": b, "batch_size": b, "signal_v": 7.3e-5} for b in (4, 32) for s in (0, 1)]
    pred = noise_sweep.predicted_onsets(table)
    assert pred["mnist batch_size=4"]["sigma_onset"] == pytest.approx(1e-4)
    assert pred["mnist batch_size=32"]["sigma_onset"] == pytest.approx(1e-4 * 8**0.5)
    assert pred["mnist batch_size=32"]["batch_size"] == 32


def test_clt_slope_has_a_bootstrap_interval():
    cfg = SweepConfig(name="c", protocol="clt_sweep", base="quickstart", grid={"seed": [0]}, target_acc=0.8)
    rng = np.random.default_rng(1)
    table, i = [], 0
    for n in (1, 4, 16, 64):
        for s in np.logspace(-4, -1, 10):
            for seed in range(3):
                eff = s / math.sqrt(n)
                table.append(_row(i, 0.1 + 0.8 / (1 + (eff / 1e-3) ** 2) + 0.01 * rng.standard_normal(),
                                  n_samples=n, sigma=float(s), seed=seed))
                i += 1
    fit = clt_sweep.analyze(table, cfg, n_boot=60)["fit"]
    assert fit["bootstrap_lo"] <= fit["slope"] <= fit["bootstrap_hi"]
    assert fit["bootstrap_hi"] - fit["bootstrap_lo"] < 0.2 and abs(fit["slope"] - 0.5) < 0.05


def _scaling_sweep(tmp_path: Path) -> Path:
    """tiny.yaml with a width axis: one curve per width."""
    text = (Path(__file__).parent / "tiny.yaml").read_text()
    text = text.replace("  - network.hidden=[128]\n", "").replace(
        "grid:\n", "grid:\n  network.hidden: [[16], [32]]\n").replace("[1.0e-4, 1.0]", "[1.0e-5, 1.0e-3, 1.0e-1]")
    path = tmp_path / "scaling.yaml"
    path.write_text(text)
    return path


def test_further_axes_give_one_curve_each_with_its_predicted_onset(tmp_path):
    """Width 16: flat to 1e-3, then chance; width 32: already down at 1e-3.  Signals 7.3e-5 and 1.46e-4 V
    (plus a +-1 % seed spread) predict onsets of 1e-4 and 2e-4 V at SNR_crit 0.73 and batch 4, times
    sqrt(8 / 4) at tiny.yaml's batch 8."""
    path = _scaling_sweep(tmp_path)
    acc = {(16, 1e-5): 0.9, (16, 1e-3): 0.88, (16, 1e-1): 0.1, (32, 1e-5): 0.9, (32, 1e-3): 0.5, (32, 1e-1): 0.1}
    with Store(tmp_path / "ws") as store:
        sweep = load_sweep(path)
        register_sweep(sweep, store)
        for t in sweep.trials:
            width, sigma, seed = t.config["network"]["hidden"][0], t.config["crossbar"]["sigma"], t.config["seed"]
            sig = 7.3e-5 * width / 16 * (1 + 0.01 * (seed - 1))
            epochs = [{"epoch": 0, "signal": [{"layer": 1, "signal_median": sig}, {"layer": 2, "signal_median": 1e-2}]}]
            a = acc[(width, sigma)] + 0.01 * seed
            store.put_trial({"sweep_id": sweep.id, "trial_id": t.id, "idx": t.index, "point": t.point,
                             "config": t.config, "status": "completed", "wall_s": 1.0, "worker": "w",
                             "result": {"final_test_acc": a, "best_test_acc": a, "wall_s": 1.0, "epochs": epochs}})
        first, paths = make_figure("fig3", sweep.id, store, tmp_path / "a")
        again, _ = make_figure("fig3", str(path), store, tmp_path / "b", trials_csv=tmp_path / "a" / "fig3-trials.csv")
    assert first["axes"] == ["network.hidden"]
    assert list(first["stages"]) == ["mnist hidden=[16]", "mnist hidden=[32]"]
    assert first["stages"]["mnist hidden=[16]"]["onset_how"] == "interpolated"
    assert 1e-5 < first["stages"]["mnist hidden=[32]"]["sigma_onset"] < 1e-3
    d = first["diagnosed_onset"]
    b8 = 2**0.5
    assert d["mnist hidden=[16]"]["sigma_onset"] == pytest.approx(1e-4 * b8, rel=1e-6)
    assert d["mnist hidden=[32]"]["sigma_onset"] == pytest.approx(2e-4 * b8, rel=1e-6)
    # resampling 3 seeds of signal x (0.99, 1.00, 1.01): the mean stays within +-1 %
    ci = d["mnist hidden=[16]"]["ci"]
    assert 0.99e-4 * b8 * (1 - 1e-9) <= ci["lo"] < 1e-4 * b8 < ci["hi"] <= 1.01e-4 * b8 * (1 + 1e-9)
    assert (tmp_path / "a" / "fig3-onsets.png") in paths
    # re-read from the trials CSV: the same curves, onsets and predictions (6 significant digits)
    assert list(again["stages"]) == list(first["stages"])
    assert again["diagnosed_onset"]["mnist hidden=[32]"]["sigma_onset"] == pytest.approx(2e-4 * b8, rel=1e-5)
    for c, st in first["stages"].items():
        assert again["stages"][c]["sigma_onset"] == pytest.approx(st["sigma_onset"], rel=1e-4)
