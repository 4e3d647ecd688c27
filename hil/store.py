"""The run store: one SQLite database (WAL) per workspace, plus checkpoint files beside it.

Short transactions, one writer per process, `busy_timeout` for the rest.  Metric
rows are keyed by (run, epoch, batch) and written with INSERT OR REPLACE, so
replaying the rows kept in a checkpoint after a kill neither loses nor
duplicates a batch.  Checkpoints go to a temp file, are fsynced, then
`os.replace`d over the previous one; they are read back with
`torch.load(weights_only=True)`, so a crafted file cannot run code.  Every
failure to read or write the store (damaged or read-only database, full disk)
is a `StoreError` that names the file.

Table `layer_signal` holds the EP signal diagnostics of `hil.diagnostics`, one row per
(run, epoch, layer): layer 1..L (the last is the output layer), `signal_median` and
`signal_rms` of |s(beta_2) - s(beta_1)| over active nodes (V), `read_sigma` (single-read
noise, V), `noise` (= read_sigma / sqrt(N), V), `snr` (= signal_median / noise),
`active_frac`, and `noise_source` ('measured' from the N reads, 'configured', 'unknown').
NULL where a value is undefined (no noise: snr NULL and noise 0).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import secrets
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hil.errors import StoreError, UserError
from hil.paths import inside
from hil.runlock import RunLock, is_held

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    created_s REAL NOT NULL, updated_s REAL NOT NULL, config TEXT NOT NULL,
    code_version TEXT, crossbar TEXT, summary TEXT, parent TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, train_acc REAL, train_loss REAL,
    test_acc REAL, test_loss REAL, lr_scale REAL, wall_s REAL, samples_per_s REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS batches (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, batch INTEGER NOT NULL, size INTEGER,
    correct INTEGER, loss REAL, iterations REAL, clipped INTEGER,
    PRIMARY KEY (run_id, epoch, batch)
);
CREATE TABLE IF NOT EXISTS layer_signal (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, layer INTEGER NOT NULL, signal_median REAL, signal_rms REAL,
    read_sigma REAL, noise REAL, snr REAL, active_frac REAL, noise_source TEXT,
    PRIMARY KEY (run_id, epoch, layer)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
    created_s REAL NOT NULL, PRIMARY KEY (run_id, name)
);
"""

# Sweep trials (hil.sweep): one row per (sweep, trial), the trial id being the hash of its
# resolved run config; written by the sweep's client only.
TRIALS_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    sweep_id TEXT NOT NULL, trial_id TEXT NOT NULL, idx INTEGER, point TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL, result TEXT, error TEXT, wall_s REAL, worker TEXT, finished_s REAL NOT NULL,
    PRIMARY KEY (sweep_id, trial_id)
);
"""

# Stop requests (the dashboard's stop button): one row per run asked to stop; the running
# process polls it (hil.runner.StopWatcher) and stops as on Ctrl-C. Cleared when the run resumes.
STOP_SCHEMA = """
CREATE TABLE IF NOT EXISTS stop_requests (run_id TEXT PRIMARY KEY, requested_s REAL NOT NULL, source TEXT);
"""


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    from hil import __version__

    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"{__version__}+g{sha}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def default_workspace() -> Path:
    return Path(os.environ.get("HIL_WORKSPACE", "hil-runs"))


#: a checkpoint's top-level keys (protocols/train.py `snapshot`)
CHECKPOINT_KEYS = frozenset({"epoch", "batch", "params", "crossbar", "tally"})


class _Connection(sqlite3.Connection):
    """A connection whose database errors are StoreErrors naming the file (damaged, read-only, disk full)."""

    store_path: Path

    def _guard(self, call, *args):
        try:
            return call(*args)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.store_path}: run store unusable: {exc}") from None

    def execute(self, *args):
        return self._guard(super().execute, *args)

    def executemany(self, *args):
        return self._guard(super().executemany, *args)

    def executescript(self, *args):
        return self._guard(super().executescript, *args)


class Store:
    """Runs, their metrics and artifacts in `<workspace>/hil.db`; checkpoints in `<workspace>/runs/<id>/`.

    With `create=False` a workspace without a store is an error, and nothing is created.
    """

    def __init__(self, workspace: Path | str | None = None, *, create: bool = True) -> None:
        self.workspace = Path(workspace) if workspace else default_workspace()
        self.path = self.workspace / "hil.db"
        self._locks: dict[str, RunLock] = {}
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not a run store")
        if not create and not self.path.is_file():
            raise StoreError(f"{self.workspace}: no run store here (no hil.db); give --workspace or HIL_WORKSPACE")
        try:
            self.workspace.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, factory=_Connection)
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise StoreError(f"{self.path}: cannot open the run store ({reason})") from None
        self._db.store_path = self.path
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.executescript(TRIALS_SCHEMA)
        self._db.executescript(STOP_SCHEMA)

    def close(self) -> None:
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # runs ------------------------------------------------------------------
    def create_run(self, name: str, config: dict[str, Any], *, kind: str = "train",
                   crossbar: str = "", parent: str | None = None, run_id: str | None = None) -> str:
        """A new run, `running` and locked by this process until the store closes."""
        run_id = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"
        self.lock(run_id)
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, name, kind, "running", now, now, json.dumps(config), code_version(), crossbar, None, parent),
            )
        return run_id

    def lock(self, run_id: str) -> None:
        """Take the run's lock for this process; a run that another live process holds is a UserError."""
        if run_id not in self._locks:
            self._locks[run_id] = RunLock(self.run_dir(run_id) / "lock").acquire(f"run {run_id}")

    def _status(self, row: dict[str, Any]) -> str:
        """The stored status, except that a `running` run whose process is gone is `interrupted`."""
        if row["status"] == "running" and not is_held(self.workspace / "runs" / row["id"] / "lock"):
            return "interrupted"
        return row["status"]

    def set_status(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET status=?, updated_s=?, summary=COALESCE(?, summary) WHERE id=?",
                (status, time.time(), json.dumps(summary) if summary is not None else None, run_id),
            )

    def run(self, run_id: str) -> dict[str, Any]:
        """One run by id, or by a unique prefix of its id; UserError if none or several match."""
        rows = self._db.execute("SELECT * FROM runs WHERE id = ? OR id LIKE ?", (run_id, run_id + "%")).fetchall()
        exact = [r for r in rows if r["id"] == run_id]
        if exact:
            rows = exact
        if not rows:
            raise UserError(f"{self.path}: no run {run_id!r} (see `hil runs list`)")
        if len(rows) > 1:
            raise UserError(f"{self.path}: {run_id!r} matches {len(rows)} runs; give more of the id")
        return self._row(rows[0])

    def runs(self, kind: str | None = None, parent: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if kind:
            query += " AND kind = ?"
            args.append(kind)
        if parent:
            query += " AND parent = ?"
            args.append(parent)
        return [self._row(r) for r in self._db.execute(query + " ORDER BY created_s", args).fetchall()]

    def _row(self, row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        out["config"] = json.loads(out["config"])
        out["summary"] = json.loads(out["summary"]) if out["summary"] else None
        out["status"] = self._status(out)
        return out

    # metrics ---------------------------------------------------------------
    def add_batches(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO batches VALUES (?,?,?,?,?,?,?,?)",
                [(run_id, r["epoch"], r["batch"], r["size"], r["correct"], r["loss"], r["iterations"],
                  r["clipped"]) for r in rows],
            )

    def add_epoch(self, run_id: str, row: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO epochs VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, row["epoch"], row["train_acc"], row["train_loss"], row["test_acc"], row["test_loss"],
                 row["lr_scale"], row["wall_s"], row["samples_per_s"]),
            )
            db.executemany(
                "INSERT OR REPLACE INTO layer_signal VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(run_id, row["epoch"], r["layer"], r["signal_median"], r["signal_rms"], r["read_sigma"],
                  r["noise"], r["snr"], r["active_frac"], r["noise_source"]) for r in row.get("signal") or []],
            )

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM epochs WHERE run_id=? ORDER BY epoch", (run_id,))]

    def layer_signal(self, run_id: str) -> list[dict[str, Any]]:
        """The per-layer EP signal diagnostics of a run, by epoch then layer (empty for older runs)."""
        cur = self._db.execute("SELECT * FROM layer_signal WHERE run_id=? ORDER BY epoch, layer", (run_id,))
        return [dict(r) for r in cur]

    def batches(self, run_id: str) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT * FROM batches WHERE run_id=? ORDER BY epoch, batch", (run_id,))
        return [dict(r) for r in cur]

    def put_artifact(self, run_id: str, name: str, kind: str, body: Any) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?)",
                       (run_id, name, kind, json.dumps(body), time.time()))

    def artifacts(self, run_id: str) -> dict[str, Any]:
        cur = self._db.execute("SELECT name, body FROM artifacts WHERE run_id=?", (run_id,))
        return {r["name"]: json.loads(r["body"]) for r in cur}

    # sweep trials ----------------------------------------------------------
    def put_trial(self, row: dict[str, Any]) -> None:
        """Record one finished (or failed) trial of a sweep; a re-run replaces the earlier row."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO trials VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (row["sweep_id"], row["trial_id"], row.get("idx"), json.dumps(row["point"]),
                 json.dumps(row["config"]), row["status"], json.dumps(row.get("result")), row.get("error"),
                 row.get("wall_s"), row.get("worker"), time.time()),
            )

    def trials(self, sweep_id: str) -> list[dict[str, Any]]:
        """The recorded trials of one sweep, in grid order."""
        cur = self._db.execute("SELECT * FROM trials WHERE sweep_id=? ORDER BY idx", (sweep_id,))
        out = []
        for r in cur:
            d = dict(r)
            for key in ("point", "config", "result"):
                d[key] = json.loads(d[key]) if d[key] is not None else None
            out.append(d)
        return out

    # stop requests ---------------------------------------------------------
    def request_stop(self, run_id: str, source: str = "") -> None:
        """Ask the process running `run_id` to stop at its next batch (or trial) boundary, as Ctrl-C does."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO stop_requests VALUES (?,?,?)", (run_id, time.time(), source))

    def stop_requested(self, run_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM stop_requests WHERE run_id=?", (run_id,)).fetchone() is not None

    def clear_stop(self, run_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM stop_requests WHERE run_id=?", (run_id,))

    # checkpoints -----------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        """`<workspace>/runs/<id>/`, created; an id that is not a plain folder name is refused."""
        path = inside(self.workspace / "runs", run_id, what="run id")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the run folder ({exc.strerror})") from None
        return path

    def save_checkpoint(self, run_id: str, state: dict[str, Any]) -> Path:
        path = self.run_dir(run_id) / "checkpoint.pt"
        import torch  # here, not at the top: `hil runs list` and `hil --help` need no torch

        buffer = io.BytesIO()
        torch.save(state, buffer)  # in memory first: a failed disk write then reports its own errno
        atomic_write(path, buffer.getvalue())
        return path

    def load_checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """The run's last checkpoint, tensors and plain data only; anything else is a StoreError."""
        path = inside(self.workspace / "runs", run_id, what="run id") / "checkpoint.pt"
        if not path.exists():
            return None
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights_only" in str(exc) or "Weights only" in str(exc):
                raise StoreError(f"{path}: refused: the checkpoint holds objects other than tensors and plain "
                                 "data, and loading them could run code") from None
            raise StoreError(f"{path}: unreadable checkpoint ({_first_line(exc)})") from None
        except (RuntimeError, OSError, EOFError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable checkpoint ({_first_line(exc)})") from None
        if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
            keys = ", ".join(sorted(CHECKPOINT_KEYS))
            raise StoreError(f"{path}: not a hil-ep checkpoint (expected the keys {keys})")
        return state


def completed_trials(db: Path) -> int:
    """Trials recorded as completed, read-only: for watching a sweep another process writes (0 if unreadable)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM trials WHERE status='completed'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a temp file, fsync, then `os.replace` it over `path`: `path` is always old or new.

    A failed write (full disk, read-only folder) removes the temp file and is a StoreError.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"{path}: cannot write ({exc.strerror or exc}); the previous file is kept") from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
