"""A stop request in the store (what the dashboard's button writes) stops a sweep as Ctrl-C does:
finished trials stay recorded, the sweep is `interrupted`, and the same command would run only the rest,
also for a sweep started in the background (SIGINT ignored)."""

from __future__ import annotations

import signal
import subprocess
import sys

from hil.store import Store
from hil.sweep import load_sweep
from hil.sweep_run import pending_trials, register_sweep
from tests.conftest import REPO
from tests.dashboard.conftest import wait_for

TINY = REPO / "tests" / "sweeps" / "tiny.yaml"


def test_a_stop_request_stops_a_sweep_and_it_resumes(tmp_path):
    ws = tmp_path / "ws"
    sweep = load_sweep(TINY)
    cmd = [sys.executable, "-m", "hil", "sweep", str(TINY), "--workspace", str(ws), "--workers", "1", "--quiet"]
    # started as a shell starts `hil sweep ... &`: SIGINT ignored, which the stop must get past
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))

    def first_trial():
        assert proc.poll() is None, proc.communicate()
        if not (ws / "hil.db").exists():
            return False
        with Store(ws) as store:
            return any(t["status"] == "completed" for t in store.trials(sweep.id))

    wait_for(first_trial, 300, "the first recorded trial", every=0.05)
    with Store(ws) as store:
        store.request_stop(sweep.id, source="test")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted:" in out and "run the same command again" in out
    with Store(ws) as store:
        assert store.run(sweep.id)["status"] == "interrupted"
        done = sum(t["status"] == "completed" for t in store.trials(sweep.id))
    assert 1 <= done < 6
    with Store(ws) as store:  # what running the same command again would do (its run is tests/sweeps' job)
        todo, skipped = pending_trials(sweep, store)
        assert (len(todo), skipped) == (6 - done, done)
        register_sweep(sweep, store)
        assert store.run(sweep.id)["status"] == "running" and not store.stop_requested(sweep.id)
