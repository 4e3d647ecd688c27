"""Dask scaling of `hil sweep` on this machine: trials/hour with 1 and with 2 workers, in one run.

Each configuration gets a fresh LocalCluster (one torch thread per worker), warmed up
(torch imported, one short trial run on every worker), then runs the same 8-trial sweep
(benchmarks/scaling.yaml) into a fresh store; the time is from submission to the last
result.  The machine's load average is printed beside it, since shared cores skew it.

    python benchmarks/sweep_scaling.py [--workers 1 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from hil.config import apply_overrides
from hil.store import Store
from hil.sweep import load_sweep
from hil.sweep_run import local_client, run_sweep, run_trial

HERE = Path(__file__).parent


def measure(workers: int, sweep_file: Path) -> dict[str, float]:
    sweep = load_sweep(sweep_file)
    client = local_client(workers)
    try:
        warm = apply_overrides(sweep.trials[0].config, ["train.max_batches=1", "data.test_subset=8"], "warm-up")
        client.wait_for_workers(workers, timeout=120)
        for addr in client.scheduler_info()["workers"]:
            client.submit(run_trial, warm, None, 1, workers=[addr], pure=False).result()
        with tempfile.TemporaryDirectory() as ws, Store(ws) as store:
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            report = run_sweep(sweep, store, client, torch_threads=1)
            wall = time.perf_counter() - t0
            per = [r["wall_s"] for r in store.trials(sweep.id)]
    finally:
        client.close()
        client.cluster.close()
    assert report.ran == len(sweep.trials) and report.failed == 0
    return {"workers": workers, "trials": report.ran, "wall_s": wall, "trials_per_hour": 3600 * report.ran / wall,
            "mean_trial_s": sum(per) / len(per), "load_avg_1min": load0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sweep", type=Path, default=HERE / "scaling.yaml")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args()
    rows = [measure(w, args.sweep) for w in args.workers]
    base = rows[0]["trials_per_hour"]
    print(f"{'workers':>7} {'trials':>6} {'wall s':>7} {'trials/hour':>11} {'speed-up':>8} {'s/trial':>7} {'load':>5}")
    for r in rows:
        print(f"{r['workers']:>7} {r['trials']:>6} {r['wall_s']:>7.1f} {r['trials_per_hour']:>11.0f} "
              f"{r['trials_per_hour'] / base:>8.2f} {r['mean_trial_s']:>7.2f} {r['load_avg_1min']:>5.1f}")
    print(f"cores: {len(os.sched_getaffinity(0))}")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
