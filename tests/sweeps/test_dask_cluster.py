"""A sweep on a real cluster: a `dask scheduler` and two `dask worker` processes on loopback, started as
a cluster's own services would be (no LocalCluster), and `hil sweep --scheduler` as the client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the sweep extra (dask.distributed) is not installed")

from hil.store import Store  # noqa: E402
from hil.sweep import load_sweep  # noqa: E402

TINY = Path(__file__).parent / "tiny.yaml"
SMALLER = ["--set", "data.train_subset=64", "--set", "data.test_subset=32", "--set", "network.hidden=[8]"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def test_tiny_sweep_through_a_scheduler_and_two_workers(tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    procs = [_spawn("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                    "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file))]
    try:
        deadline = time.monotonic() + 120
        while not scheduler_file.exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, procs[0].communicate()
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = [_spawn("distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                          "--no-nanny", "--host", "127.0.0.1", "--dashboard-address", ":0") for _ in range(2)]
        procs += workers
        out = subprocess.run([sys.executable, "-m", "hil", "sweep", str(TINY), *SMALLER, "--scheduler", address,
                              "--quiet", "--workspace", str(tmp_path / "ws")], capture_output=True, text=True,
                             timeout=600, env=ENV)
        assert out.returncode == 0, out.stderr
        assert f"scheduler {address}" in out.stdout
        with Store(tmp_path / "ws", create=False) as store:
            trials = store.trials(load_sweep(TINY, SMALLER[1::2]).id)
        assert len(trials) == 6 and all(t["status"] == "completed" for t in trials)
        pids = {int(t["worker"].rsplit(":", 1)[1]) for t in trials}
        assert pids <= {w.pid for w in workers}, (pids, [w.pid for w in workers])  # ran in the workers, not here
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
