"""Packed vs unpacked sweep trials: trials/hour on a 2-worker LocalCluster for several pack sizes, in one run.

Sweeps (8 trials each, reduced to fit 2 shared cores): noise_sweep-small's 1568-256-10 network
(benchmarks/packing-small.yaml) and the paper's 1568-1024-10 (benchmarks/packing-paper.yaml).
One LocalCluster (one torch thread per worker) is warmed up (one short trial per worker), then
each pack size runs the whole sweep into a fresh store with `run_sweep(pack=P)`, in turn, for
`--repeats` rounds; the best round of each pack size is kept, so a shared machine's changing load
does not favour one side.  The time is from submission to the last result.

    python benchmarks/packing.py [--packs 1 2 4] [--repeats 2] [--json]
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


def measure(client, sweep_file: Path, pack: int, workers: int) -> dict[str, float]:
    sweep = load_sweep(sweep_file)
    with tempfile.TemporaryDirectory() as ws, Store(ws) as store:
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        report = run_sweep(sweep, store, client, torch_threads=1, pack=pack)
        wall = time.perf_counter() - t0
    assert report.ran == len(sweep.trials) and report.failed == 0
    return {"sweep": sweep.config.name, "pack": pack, "workers": workers, "trials": report.ran, "wall_s": wall,
            "trials_per_hour": 3600 * report.ran / wall, "load_avg_1min": load0}


def warm_up(client, sweep_file: Path, workers: int) -> None:
    sweep = load_sweep(sweep_file)
    warm = apply_overrides(sweep.trials[0].config, ["train.max_batches=1", "data.test_subset=8"], "warm-up")
    client.wait_for_workers(workers, timeout=120)
    for addr in client.scheduler_info()["workers"]:
        client.submit(run_trial, warm, None, 1, workers=[addr], pure=False).result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packs", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--sweeps", type=Path, nargs="+",
                    default=[HERE / "packing-small.yaml", HERE / "packing-paper.yaml"])
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args()
    client = local_client(args.workers)
    best: dict[tuple[str, int], dict[str, float]] = {}
    try:
        for sweep_file in args.sweeps:
            warm_up(client, sweep_file, args.workers)
            for _ in range(args.repeats):
                for pack in args.packs:
                    r = measure(client, sweep_file, pack, args.workers)
                    print(f"{r['sweep']:>14} pack {pack}: {r['trials']} trials in {r['wall_s']:6.1f} s = "
                          f"{r['trials_per_hour']:7.0f} trials/hour (load {r['load_avg_1min']:.1f})", flush=True)
                    key = (r["sweep"], pack)
                    if key not in best or r["trials_per_hour"] > best[key]["trials_per_hour"]:
                        best[key] = r
    finally:
        client.close()
        client.cluster.close()
    print(f"best of {args.repeats}; cores: {len(os.sched_getaffinity(0))}, workers: {args.workers}")
    for (name, pack), r in best.items():
        base = best[(name, args.packs[0])]["trials_per_hour"]
        print(f"{name:>14} pack {pack}: {r['trials_per_hour']:7.0f} trials/hour  x{r['trials_per_hour'] / base:.2f}")
    if args.json:
        print(json.dumps(list(best.values())))


if __name__ == "__main__":
    main()
