"""One training run's epochs as a small CSV for docs/results: accuracies, loss, wall time, EP signal per layer.

    python docs/results/scripts/run_epochs.py RUN --workspace WS --out docs/results/drn-1h-fashion/epochs.csv

Epochs count from 1 here (the store counts from 0); `<layer>_signal_median_v` is the median
|s(beta_2) - s(beta_1)| over active nodes of that epoch (hil.diagnostics).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from hil.diagnostics import layer_name
from hil.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--workspace", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    with Store(args.workspace) as store:
        run = store.run(args.run)
        epochs, signal = store.epochs(run["id"]), store.layer_signal(run["id"])
    depth = max((r["layer"] for r in signal), default=0)
    sig = {(r["epoch"], r["layer"]): r["signal_median"] for r in signal}
    rows = [{"epoch": e["epoch"] + 1, "train_acc": e["train_acc"], "test_acc": e["test_acc"],
             "test_loss": e["test_loss"], "wall_s": e["wall_s"],
             **{f"{layer_name(k, depth)}_signal_median_v": sig.get((e["epoch"], k)) for k in range(1, depth + 1)}}
            for e in epochs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["epoch"])
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(rows)} epochs of {run['id']})")


if __name__ == "__main__":
    main()
