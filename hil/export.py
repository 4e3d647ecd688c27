"""`hil runs export`: one run's tables as CSV, Parquet (pandas + pyarrow) or one NetCDF file (xarray).

CSV and Parquet give one file per table (`<run>-epochs`, `-batches`, `-trials`,
`-samples`) plus `<run>-run.json` (config, summary, status).  NetCDF gives one
`<run>.nc` with a dimension per table (`epoch`, `step`, `trial`, `time` x `node`)
and the run's JSON in the attribute `run_json`.  Every file is written to a temp
name and `os.replace`d, so an interrupted export leaves no torn file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hil.errors import UserError
from hil.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("csv", "parquet", "netcdf")


def tables(ws: Workspace, run: str) -> dict[str, pd.DataFrame]:
    """The non-empty tables of a run: epochs and batches (training), trials (sweep), samples (characterization)."""
    row = ws.run(run)
    out: dict[str, pd.DataFrame] = {}
    if row["kind"] == "sweep":
        out["trials"] = ws.trials(row["id"])
    for name, get in (("epochs", ws.epochs), ("batches", ws.batches)):
        df = get(row["id"])
        if len(df):
            out[name] = df
    if (ws.path / "runs" / row["id"] / "samples.npz").is_file():
        out["samples"] = ws.samples(row["id"]).to_dataframe().reset_index()
    return out


def export_run(ws: Workspace, run: str, fmt: str, out: Path) -> list[Path]:
    """Write the run's tables to `out` in `fmt`; returns the files written."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    row = ws.run(run)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({k: row[k] for k in ("id", "name", "kind", "status", "crossbar", "parent", "created_s",
                                           "updated_s", "code_version", "config", "summary")}, indent=1)
    if fmt == "netcdf":
        path = out / f"{row['id']}.nc"
        _atomic(path, lambda tmp: _dataset(ws, row["id"], meta).to_netcdf(tmp, engine="netcdf4"))
        return [path]
    paths = [out / f"{row['id']}-run.json"]
    _atomic(paths[0], lambda tmp: tmp.write_text(meta + "\n"))
    for name, df in tables(ws, row["id"]).items():
        path = out / f"{row['id']}-{name}.{fmt}"
        if fmt == "csv":
            _atomic(path, lambda tmp, df=df: df.to_csv(tmp, index=False))
        else:
            _atomic(path, lambda tmp, df=df: _plain(df).to_parquet(tmp, index=False))
        paths.append(path)
    return paths


def _dataset(ws: Workspace, run_id: str, meta: str):
    """All tables of a run in one xarray Dataset, each on its own dimension; variables `<table>_<column>`."""
    import xarray as xr

    parts = []
    dims = {"epochs": "epoch", "batches": "step", "trials": "trial"}
    for name, df in tables(ws, run_id).items():
        if name == "samples":
            parts.append(ws.samples(run_id).rename(reads="samples_reads"))
            continue
        dim = dims[name]
        df = _plain(df).rename(columns={c: f"{name}_{c}" for c in df.columns})
        parts.append(xr.Dataset({c: (dim, df[c].to_numpy()) for c in df.columns}))
    ds = xr.merge(parts, compat="no_conflicts", join="outer") if parts else xr.Dataset()
    ds.attrs = {"run_json": meta, "source": "hil runs export"}
    return ds


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Columns that every format stores: numbers stay numbers, anything else becomes text ('' for missing)."""
    import pandas as pd

    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object or str(df[col].dtype) in ("str", "string"):
            numeric = pd.to_numeric(df[col], errors="coerce")
            if numeric.notna().sum() == df[col].notna().sum() and df[col].notna().any():
                df[col] = numeric.astype(float)
            else:
                df[col] = df[col].map(_text).astype(object)
    return df


def _text(v: object) -> str:
    import pandas as pd

    return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
