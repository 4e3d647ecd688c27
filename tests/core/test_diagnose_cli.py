"""`hil diagnose` and `hil runs show` on a stored run's EP signal diagnostics (in-process CLI, real store)."""

from __future__ import annotations

import json
import math

import pytest

from hil.cli import main
from hil.diagnostics import DEFAULT_SNR_CRIT
from hil.store import Store


def _run_with_signal(workspace, signals: list[tuple[float, float]], train: dict | None = None) -> str:
    with Store(workspace) as store:
        run_id = store.create_run("noiseless", {"train": train or {}})
        for epoch, (h, y) in enumerate(signals):
            store.add_epoch(run_id, {
                "epoch": epoch, "train_acc": 0.9, "train_loss": 0.1, "test_acc": 0.9, "test_loss": 0.1,
                "lr_scale": 1.0, "wall_s": 1.0, "samples_per_s": 1.0,
                "signal": [{"layer": 1, "signal_median": h, "signal_rms": 2 * h, "read_sigma": 0.0, "noise": 0.0,
                            "snr": None, "active_frac": 0.2, "noise_source": "configured"},
                           {"layer": 2, "signal_median": y, "signal_rms": 2 * y, "read_sigma": 0.0, "noise": 0.0,
                            "snr": None, "active_frac": 1.0, "noise_source": "configured"}]})
        return run_id


def test_diagnose_predicts_signal_over_snr_crit_times_sqrt_n(tmp_path, capsys):
    run_id = _run_with_signal(tmp_path, [(1e-4, 1e-2), (3e-4, 3e-2)])  # mean over epochs: 2e-4 (h1)
    main(["diagnose", run_id, "--workspace", str(tmp_path), "--snr-crit", "2", "--n", "1", "--n", "16",
          "--onset", "5e-5"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["layer"] == "h1"
    assert out["sigma_onset"]["1"] == pytest.approx(1e-4)
    assert out["sigma_onset"]["16"] == pytest.approx(4e-4)
    assert out["implied_snr_crit"] == pytest.approx(4.0)
    main(["diagnose", run_id, "--workspace", str(tmp_path), "--epoch", "1", "--n", "4"])  # default SNR_crit
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["snr_crit"] == DEFAULT_SNR_CRIT
    assert out["sigma_onset"]["4"] == pytest.approx(1e-4 / DEFAULT_SNR_CRIT * math.sqrt(4))


def test_diagnose_scales_the_onset_with_sqrt_of_the_batch(tmp_path, capsys):
    """An update averages the read noise of B samples; SNR_crit was set at batch 4: x sqrt(16 / 4) = 2."""
    run_id = _run_with_signal(tmp_path, [(1e-4, 1e-2)], train={"batch_size": 16})
    main(["diagnose", run_id, "--workspace", str(tmp_path), "--snr-crit", "2", "--n", "1", "--n", "4",
          "--onset", "2e-4"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["batch_size"] == 16
    assert out["sigma_onset"] == pytest.approx({"1": 1e-4, "4": 2e-4})
    assert out["implied_snr_crit"] == pytest.approx(1.0)  # 1e-4 V x 2 / 2e-4 V


def test_runs_show_lists_the_signal_table(tmp_path, capsys):
    run_id = _run_with_signal(tmp_path, [(1.5e-4, 2e-2)])
    main(["runs", "show", run_id, "--workspace", str(tmp_path)])
    text = capsys.readouterr().out
    assert "EP signal per layer" in text and "1.50e-04" in text and "inf" in text


def test_diagnose_without_diagnostics_is_a_one_line_error(tmp_path, capsys):
    with Store(tmp_path) as store:
        run_id = store.create_run("old", {"train": {}})
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", run_id, "--workspace", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no EP signal diagnostics" in err and "Traceback" not in err


def test_diagnose_a_sweep_uses_its_lowest_sigma_trials(tmp_path, capsys):
    from hil.sweep import load_sweep
    from hil.sweep_run import register_sweep

    sweep = load_sweep("noise_sweep-small")
    with Store(tmp_path) as store:
        register_sweep(sweep, store)
        for t in sweep.trials:
            if t.point["data.dataset"] != "mnist" or t.point["crossbar.sigma"] > 1e-5:
                continue
            h = 2e-4 if t.point["crossbar.sigma"] == 1e-6 else 9.0  # only the lowest sigma may count
            sig = [{"layer": 1, "signal_median": h * (1 + 0.1 * t.point["seed"]), "noise": 1e-6},
                   {"layer": 2, "signal_median": 1e-2, "noise": 1e-6}]
            store.put_trial({"sweep_id": sweep.id, "trial_id": t.id, "idx": t.index, "point": t.point,
                             "config": t.config, "status": "completed", "wall_s": 1.0, "worker": "w",
                             "result": {"final_test_acc": 0.9, "epochs": [{"epoch": 0, "signal": sig}]}})
    main(["diagnose", sweep.id, "--workspace", str(tmp_path), "--dataset", "mnist", "--snr-crit", "1", "--n", "1"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["signal_v"] == pytest.approx(2e-4 * 1.15)  # mean over seeds 0..3 of h (1 + 0.1 seed)
