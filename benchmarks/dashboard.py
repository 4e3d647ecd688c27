"""Measure the dashboard: store-to-page delay, its cost to a training run beside it, the export round trip.

    python benchmarks/dashboard.py [--out docs/figures] [--batches 50]

1. Delay: a run is held open in a page (headless Chromium); this script stores 50 batches
   one at a time, 0.2 s apart, and the page notes when each one reaches it (same clock).
   Reported: median, 90th percentile and max of (arrival on the page - commit to SQLite).
2. Cost: one quickstart-sized training run (1568-1024-10, batch 8, 1000 training images per
   epoch, 6 epochs) in its own process; `hil dashboard` runs throughout in its own process;
   a page is open on the run during epochs 3-4 only (A-B-A).  Reported: per-epoch samples/s,
   the mean with and without the page, and the CPU seconds of the server over the run.
3. Export: that run to CSV, Parquet and NetCDF, read back with pandas/xarray and compared.
Needs the `dashboard` and `data` extras, playwright and Debian's chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hil.store import Store  # noqa: E402
from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, Server, wait_for  # noqa: E402


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delay(browser, n: int, shots: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        store = Store(ws)
        run_id = store.create_run("latency", {"train": {"epochs": 1, "batch_size": 8}, "data": {"train_subset": 8 * n}})
        server = Server(ws)
        page = browser.new_page()
        page.goto(f"{server.url}/run/{run_id}")
        wait_for(lambda: page.evaluate("document.getElementById('live').classList.contains('on')"), 30, "live")
        commits = []
        for b in range(n):
            store.add_batches(run_id, [{"epoch": 0, "batch": b, "size": 8, "correct": b % 9, "loss": 0.5,
                                        "iterations": 4.0, "clipped": 0}])
            commits.append(time.time() * 1000)
            time.sleep(0.2)
        wait_for(lambda: page.evaluate("window.hilArrivals.length") == n, 30, "all batches on the page")
        arrivals = [a["t"] for a in page.evaluate("window.hilArrivals")]
        page.close()
        server.close()
        store.close()
    d = sorted(a - c for a, c in zip(arrivals, commits))
    return {"batches": n, "median_ms": statistics.median(d), "p90_ms": d[int(0.9 * (n - 1))], "max_ms": d[-1]}


def cost(browser, ws: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    Store(ws).close()
    dash = subprocess.Popen([sys.executable, "-m", "hil", "dashboard", "--workspace", str(ws), "--port", "0"],
                            stdout=subprocess.PIPE, text=True, env=env)
    url = dash.stdout.readline().split(": ", 1)[1].split()[0]
    cpu0 = cpu_s(dash.pid)
    train = subprocess.Popen([sys.executable, "-m", "hil", "train", "quickstart", "--workspace", str(ws), "--quiet",
                              "--set", "data.train_subset=1000", "--set", "data.test_subset=200",
                              "--set", "train.epochs=6"], stdout=subprocess.DEVNULL, env=env)
    with Store(ws) as store:
        run_id = wait_for(lambda: [r["id"] for r in store.runs()], 300, "the run")[0]
        wait_for(lambda: len(store.epochs(run_id)) >= 2, 1800, "two epochs", every=0.05)
        page = browser.new_page()
        page.goto(f"{url}run/{run_id}")
        wait_for(lambda: len(store.epochs(run_id)) >= 4, 1800, "four epochs", every=0.2)
        page.close()
        assert train.wait(1800) == 0
        epochs = store.epochs(run_id)
    server_cpu = cpu_s(dash.pid) - cpu0
    dash.terminate()
    dash.wait(10)
    sps = [e["samples_per_s"] for e in epochs]
    with_page, without = sps[2:4], sps[:2] + sps[4:]
    return {"run": run_id, "samples_per_s": [round(s, 1) for s in sps],
            "mean_without_page": round(statistics.mean(without), 1),
            "mean_with_page": round(statistics.mean(with_page), 1),
            "ratio": round(statistics.mean(with_page) / statistics.mean(without), 3),
            "server_cpu_s": round(server_cpu, 2), "train_wall_s": round(sum(e["wall_s"] for e in epochs), 1)}


def export(ws: Path, run_id: str) -> dict:
    import numpy as np
    import pandas as pd
    import xarray as xr

    import hil
    from hil.export import export_run

    out = {}
    with hil.open_workspace(ws) as w, tempfile.TemporaryDirectory() as tmp:
        ref = w.batches(run_id)
        for fmt in ("csv", "parquet", "netcdf"):
            t0 = time.perf_counter()
            paths = export_run(w, run_id, fmt, Path(tmp) / fmt)
            t1 = time.perf_counter()
            if fmt == "netcdf":
                with xr.open_dataset(paths[0]) as ds:
                    same = bool(np.array_equal(ds.batches_loss.values, ref.loss.to_numpy()))
            else:
                back = (pd.read_csv if fmt == "csv" else pd.read_parquet)(Path(tmp) / fmt / f"{run_id}-batches.{fmt}")
                same = bool(back.equals(ref) or np.array_equal(back.loss.to_numpy(), ref.loss.to_numpy()))
            out[fmt] = {"write_s": round(t1 - t0, 3), "read_s": round(time.perf_counter() - t1, 3),
                        "bytes": sum(p.stat().st_size for p in paths), "batches": len(ref), "identical": same}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--skip-cost", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    result = {"load_average_before": os.getloadavg()}
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        result["delay"] = delay(browser, args.batches, None)
        print(json.dumps(result["delay"]), flush=True)
        if not args.skip_cost:
            result["cost"] = cost(browser, Path(tmp))
            print(json.dumps(result["cost"]), flush=True)
            result["export"] = export(Path(tmp), result["cost"]["run"])
            print(json.dumps(result["export"]), flush=True)
        browser.close()
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
