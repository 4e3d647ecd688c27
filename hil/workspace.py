"""Data out of a run store: runs, epochs, batches and trials as pandas DataFrames, reads as xarray.

    >>> import hil
    >>> ws = hil.open_workspace("hil-runs")
    >>> ws.runs(kind="train")            # one row per run
    >>> ws.epochs("20261201-")           # a run by id or unique id prefix
    >>> ws.samples(characterization_id)  # raw reads: xarray.Dataset (time x node)

pandas and xarray are the `data` extra (`pip install 'hil-ep[data]'`); they are
imported only when a table is asked for, so `import hil` stays light.  Reading
opens the SQLite store in WAL mode next to a running writer without blocking it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hil.errors import UserError
from hil.store import Store

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

SAMPLES_FILE = "samples.npz"  # raw characterization reads, beside the run's checkpoint


def open_workspace(path: str | Path | None = None) -> Workspace:
    """The run store in `path` (default ./hil-runs or HIL_WORKSPACE); UserError if it holds none."""
    from hil.store import default_workspace

    folder = Path(path) if path is not None else default_workspace()
    if not (folder / "hil.db").is_file():
        raise UserError(f"{folder}: no run store here (expected {folder / 'hil.db'}; see `hil runs list`)")
    return Workspace(folder)


class Workspace:
    """Read-side view of one workspace; every table comes back as a fresh DataFrame."""

    def __init__(self, path: str | Path) -> None:
        self.store = Store(path)
        self.path = self.store.workspace

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, run: str) -> dict[str, Any]:
        """One run's row (config and summary as dicts), by id or unique id prefix."""
        return self.store.run(run)

    def runs(self, kind: str | None = None, status: str | None = None) -> pd.DataFrame:
        """One row per run: id, name, kind, status, crossbar, started/updated (UTC), epochs done, last test acc."""
        import pandas as pd

        rows = []
        for r in self.store.runs(kind=kind):
            if status and r["status"] != status:
                continue
            epochs = self.store.epochs(r["id"])
            rows.append({
                "id": r["id"], "name": r["name"], "kind": r["kind"], "status": r["status"], "crossbar": r["crossbar"],
                "parent": r["parent"], "created": r["created_s"], "updated": r["updated_s"],
                "epochs": len(epochs), "test_acc": epochs[-1]["test_acc"] if epochs else None,
                "code_version": r["code_version"], "summary": json.dumps(r["summary"]) if r["summary"] else None,
            })
        cols = ["id", "name", "kind", "status", "crossbar", "parent", "created", "updated", "epochs", "test_acc",
                "code_version", "summary"]
        df = pd.DataFrame(rows, columns=cols)
        for col in ("created", "updated"):
            df[col] = pd.to_datetime(df[col].astype(float), unit="s", utc=True)
        return df

    def epochs(self, run: str) -> pd.DataFrame:
        """Per-epoch metrics of a run (epoch counts from 0), one row per finished epoch."""
        import pandas as pd

        return pd.DataFrame(self.store.epochs(self.run(run)["id"])).drop(columns="run_id", errors="ignore")

    def batches(self, run: str) -> pd.DataFrame:
        """Per-batch metrics of a run: size, correct, loss, solver iterations, clipped cells, running accuracy."""
        import pandas as pd

        df = pd.DataFrame(self.store.batches(self.run(run)["id"]))
        df = df.drop(columns="run_id", errors="ignore")
        if len(df):
            df["acc"] = df["correct"] / df["size"]
        return df

    def trials(self, sweep: str) -> pd.DataFrame:
        """One row per recorded trial of a sweep: its grid point (one column per axis), status and results."""
        import pandas as pd

        rows = []
        for t in self.store.trials(self.run(sweep)["id"]):
            res = t["result"] or {}
            scalars = {k: v for k, v in res.items() if isinstance(v, (int, float, str, bool)) or v is None}
            rows.append({"trial": t["idx"], "trial_id": t["trial_id"], **t["point"], "status": t["status"],
                         **scalars, "error": t["error"], "worker": t["worker"]})
        return pd.DataFrame(rows)

    def samples(self, run: str) -> xr.Dataset:
        """Raw reads of a characterization run: `reads` (V) over (time, node), as stored before detrending."""
        import xarray as xr

        row = self.run(run)
        path = self.path / "runs" / row["id"] / SAMPLES_FILE
        if not path.is_file():
            raise UserError(f"run {row['id']} has no stored samples ({path}); only `hil characterize` runs do")
        with np.load(path, allow_pickle=False) as z:  # plain arrays only: nothing read can run code
            reads, times, nodes = z["reads"], z["times_s"], z["nodes"]
        return xr.Dataset(
            {"reads": (("time", "node"), reads, {"units": "V", "long_name": "node voltage, one read"})},
            coords={"time": ("time", times, {"units": "s"}), "node": ("node", nodes.astype(str))},
            attrs={"run_id": row["id"], "name": row["name"], "crossbar": row["crossbar"] or ""},
        )


def save_samples(run_dir: Path, reads: np.ndarray, times_s: np.ndarray, nodes: list[str]) -> Path:
    """Write a characterization's raw reads atomically (temp file, then os.replace)."""
    import os

    path = run_dir / SAMPLES_FILE
    tmp = run_dir / f".{SAMPLES_FILE}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, reads=reads, times_s=times_s, nodes=np.array(nodes, dtype=str))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
