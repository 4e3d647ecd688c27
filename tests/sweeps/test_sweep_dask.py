"""A tiny sweep on a real LocalCluster: results recorded by the client, re-runs skip, failures recorded,
and a sweep killed midway (SIGKILL, in a subprocess) resumes to the same table as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hil.analysis.sweep_stats import trial_table
from hil.store import Store, completed_trials
from hil.sweep import load_sweep
from hil.sweep_cost import estimate
from hil.sweep_run import local_client, run_sweep, run_trial
from tests.conftest import full_data_root, needs_full_data

TINY = Path(__file__).parent / "tiny.yaml"


def _table(sweep, store):
    return {r["trial_id"]: (r["status"], r["final_test_acc"], r["best_test_acc"]) for r in trial_table(sweep, store)}


@pytest.fixture(scope="module")
def client():
    c = local_client(2)
    yield c
    c.close()
    c.cluster.close()


@pytest.fixture(scope="module")
def reference(client, tmp_path_factory):
    """The tiny sweep, uninterrupted, on 2 workers."""
    ws = tmp_path_factory.mktemp("reference")
    sweep = load_sweep(TINY)
    with Store(ws) as store:
        report = run_sweep(sweep, store, client)
        return sweep, ws, report, _table(sweep, store)


def test_tiny_sweep_runs_on_local_cluster(reference, client):
    sweep, ws, report, table = reference
    assert (report.total, report.ran, report.failed, report.skipped) == (6, 6, 0, 0)
    assert all(status == "completed" for status, *_ in table.values())
    with Store(ws) as store:
        low = [r["final_test_acc"] for r in trial_table(sweep, store) if r["sigma"] < 1e-3]
        high = [r["final_test_acc"] for r in trial_table(sweep, store) if r["sigma"] == 1.0]
        assert sum(low) / 3 > sum(high) / 3 + 0.1  # noise of 1 V per read ruins training
        assert store.run(sweep.id)["status"] == "completed" and store.run(sweep.id)["kind"] == "sweep"
        again = run_sweep(sweep, store, client)  # a re-run skips every finished trial
        assert (again.ran, again.skipped) == (0, 6)
        assert _table(sweep, store) == table


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(client, tmp_path):
    path = tmp_path / "fail.yaml"
    body = yaml.safe_load(TINY.read_text())
    body["grid"] = {"data.dataset": ["mnist", "fashion-mnist"]}  # embedded data is MNIST only
    body["seeds"] = 1
    path.write_text(yaml.safe_dump(body))
    sweep = load_sweep(path)
    with Store(tmp_path / "ws") as store:
        report = run_sweep(sweep, store, client)
        assert (report.ran, report.failed) == (2, 1)
        rows = {r["dataset"]: r for r in trial_table(sweep, store)}
        assert rows["mnist"]["status"] == "completed"
        assert rows["fashion-mnist"]["status"] == "failed" and "MNIST subset" in rows["fashion-mnist"]["error"]
        assert store.run(sweep.id)["status"] == "partial"
        again = run_sweep(sweep, store, client)  # failed trials are tried again, finished ones are not
        assert (again.ran, again.skipped, again.failed) == (1, 1, 1)


def _sweep_cmd(ws: Path) -> list[str]:
    return [sys.executable, "-m", "hil", "sweep", str(TINY), "--workspace", str(ws), "--workers", "1", "--threads", "1",
            "--quiet"]


def test_killed_sweep_resumes_to_the_uninterrupted_table(reference, tmp_path):
    sweep, _, _, expected = reference
    ws = tmp_path / "ws"
    proc = subprocess.Popen(_sweep_cmd(ws), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: client, scheduler, workers
    try:
        deadline = time.monotonic() + 120
        while completed_trials(ws / "hil.db") < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no trial finished within 120 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done = completed_trials(ws / "hil.db")
    assert 2 <= done < 6, f"killed after {done} of 6 trials"
    out = subprocess.run(_sweep_cmd(ws), capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert (summary["ran"], summary["skipped"], summary["pending"]) == (6 - done, done, 0)
    with Store(ws) as store:
        assert _table(sweep, store) == expected


def test_estimate_models_the_cost_without_running_the_sweep(tmp_path):
    sweep = load_sweep(TINY)
    with Store(tmp_path) as store:
        est = estimate(sweep, store, workers=2)
        assert est["pending"] == 6 and est["method"].startswith("modelled")
        assert 0 < est["per_trial_s"] < 60 and est["total_s"] == pytest.approx(6 * est["per_trial_s"] / 2)
        assert store.trials(sweep.id) == []


@needs_full_data
def test_one_trial_on_full_fashion_mnist():
    sweep = load_sweep(TINY, ["data.dataset=fashion-mnist", "data.root=null", "data.train_subset=400"])
    res = run_trial(sweep.trials[0].config, str(full_data_root()), 1)
    assert 0.0 <= res["final_test_acc"] <= 1.0 and len(res["epochs"]) == 1 and res["torch_threads"] == 1
