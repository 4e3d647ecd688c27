"""What the dashboard shows, read from the run store as JSON-ready dicts (no web code here).

All reads go through one `Store` connection owned by the server's event-loop thread.
SQLite's `PRAGMA data_version` changes whenever another connection commits, so the
server polls that one integer and queries the tables only when something was written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hil.store import Store

LIVE = ("running",)
STOPPABLE = ("train", "sweep")


class DashboardData:
    """Queries over one workspace, shaped for the pages."""

    def __init__(self, workspace: str | Path) -> None:
        self.store = Store(workspace)
        self.db = self.store._db

    def close(self) -> None:
        self.store.close()

    def version(self) -> int:
        """Changes whenever any other connection has committed to the store."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def has_table(self, name: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        return self.db.execute(query, (name,)).fetchone() is not None

    # the runs page ---------------------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        """Every run and sweep, newest first, with progress and accuracy."""
        last_epoch = {r[0]: dict(r) for r in self.db.execute(
            "SELECT run_id, MAX(epoch) AS epoch, COUNT(*) AS n FROM epochs GROUP BY run_id")}
        test_acc = {r[0]: r[1] for r in self.db.execute(
            "SELECT e.run_id, e.test_acc FROM epochs e JOIN (SELECT run_id, MAX(epoch) m FROM epochs GROUP BY run_id)"
            " l ON e.run_id = l.run_id AND e.epoch = l.m")}
        trials = {r[0]: dict(r) for r in self.db.execute(
            "SELECT sweep_id, SUM(status='completed') AS done, SUM(status='failed') AS failed, "
            "MAX(CASE WHEN status='completed' THEN json_extract(result, '$.final_test_acc') END) AS best "
            "FROM trials GROUP BY sweep_id")}
        progress = {r[0]: json.loads(r[1]) for r in self.db.execute(
            "SELECT run_id, body FROM artifacts WHERE name='progress'")}
        out = []
        for r in self.store.runs():
            row = {k: r[k] for k in ("id", "name", "kind", "status", "created_s", "updated_s", "parent")}
            row["crossbar"] = crossbar_label(r)
            row["stoppable"] = r["kind"] in STOPPABLE and r["status"] in LIVE
            if r["kind"] == "sweep":
                t = trials.get(r["id"], {})
                total = _sweep_size(r["config"])
                done, failed = t.get("done") or 0, t.get("failed") or 0
                row["progress"] = f"{done}/{total or '?'} trials" + (f", {failed} failed" if failed else "")
                row["fraction"] = done / total if total else None
                row["accuracy"] = t.get("best")
                row["accuracy_label"] = "best trial"
            else:
                epochs = (r["config"].get("train") or {}).get("epochs")
                n = (last_epoch.get(r["id"]) or {}).get("n", 0)
                p = progress.get(r["id"])
                if p and epochs:
                    frac = min(1.0, (p["epoch"] + p["batch"] / max(p["batches"], 1)) / epochs)
                    row["progress"] = f"epoch {min(p['epoch'] + 1, epochs)}/{epochs}, batch {p['batch']}/{p['batches']}"
                    row["fraction"] = 1.0 if r["status"] == "completed" else frac
                elif epochs:
                    row["progress"] = f"{n}/{epochs} epochs"
                    row["fraction"] = n / epochs
                else:
                    row["progress"], row["fraction"] = r["status"], None
                row["accuracy"] = test_acc.get(r["id"])
                if row["accuracy"] is None and r["summary"]:
                    row["accuracy"] = r["summary"].get("final_test_acc")
                row["accuracy_label"] = "test"
            out.append(row)
        return sorted(out, key=lambda x: -x["created_s"])

    # a training run --------------------------------------------------------------------------
    def run(self, run_id: str) -> dict[str, Any]:
        r = self.store.run(run_id)
        return {**r, "crossbar_label": crossbar_label(r), "stoppable": r["kind"] in STOPPABLE and r["status"] in LIVE}

    def batches_after(self, run_id: str, epoch: int, batch: int) -> list[dict[str, Any]]:
        """Batches stored after (epoch, batch), in order: what an open page has not seen yet."""
        cur = self.db.execute(
            "SELECT epoch, batch, size, correct, loss, iterations, clipped FROM batches WHERE run_id=? AND "
            "(epoch > ? OR (epoch = ? AND batch > ?)) ORDER BY epoch, batch", (run_id, epoch, epoch, batch))
        return [dict(r) for r in cur]

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        return [{k: _finite(v) for k, v in e.items() if k != "run_id"} for e in self.store.epochs(run_id)]

    def layer_signal(self, run_id: str) -> list[dict[str, Any]]:
        """Per-layer EP signal / noise / SNR per epoch, where the run recorded them (see hil.diagnostics)."""
        if not self.has_table("layer_signal"):
            return []
        cur = self.db.execute("SELECT * FROM layer_signal WHERE run_id=? ORDER BY epoch, layer", (run_id,))
        return [{k: _finite(v) for k, v in dict(r).items() if k != "run_id"} for r in cur]

    def progress(self, run_id: str) -> dict[str, Any] | None:
        """Position, samples/s and ETA of a training run (from its live `progress` artifact)."""
        row = self.db.execute("SELECT body FROM artifacts WHERE run_id=? AND name='progress'", (run_id,)).fetchone()
        if row is None:
            return None
        p = json.loads(row[0])
        r = self.store.run(run_id)
        tc = r["config"].get("train") or {}
        left = (p["epochs"] - p["epoch"]) * p["batches"] - p["batch"]
        sps = p.get("samples_per_s") or 0.0
        p["eta_s"] = left * tc.get("batch_size", 1) / sps if sps > 0 and r["status"] in LIVE else None
        return p

    def artifacts(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Name -> {kind, body} of a run's artifacts (the `progress` one excepted)."""
        cur = self.db.execute("SELECT name, kind, body FROM artifacts WHERE run_id=? AND name != 'progress'",
                              (run_id,))
        return {r["name"]: {"kind": r["kind"], "body": json.loads(r["body"])} for r in cur}

    def trials_seen(self, run_id: str) -> list[Any]:
        """(count, last finished time) of a sweep's recorded trials: changes with every trial that arrives."""
        return list(self.db.execute("SELECT COUNT(*), MAX(finished_s) FROM trials WHERE sweep_id=?", (run_id,))
                    .fetchone())

    def stop_requested(self, run_id: str) -> bool:
        return self.store.stop_requested(run_id)

    # a sweep ---------------------------------------------------------------------------------
    def trials(self, sweep_id: str) -> dict[str, Any]:
        """The trial table of a sweep (grid order, pending ones included) and its counts."""
        from hil.analysis.sweep_stats import table_for
        from hil.sweep import open_sweep

        cfg, sid, trials = open_sweep(sweep_id, self.store)
        table = table_for(cfg, sid, trials, self.store)
        total = _sweep_size(self.store.run(sid)["config"]) or len(table)
        done = sum(r["status"] == "completed" for r in table)
        failed = sum(r["status"] == "failed" for r in table)
        rows = [{k: _finite(v) for k, v in r.items() if k != "error"} | {"error": _last_line(r["error"])}
                for r in table]
        return {"protocol": cfg.protocol, "total": total, "done": done, "failed": failed,
                "pending": total - done - failed, "rows": rows, "config": cfg, "table": table}


def crossbar_label(run: dict[str, Any]) -> str:
    """'twin', or the station file's name for a lab run."""
    xb = run["config"].get("crossbar") or {}
    if xb.get("station"):
        return f"station {Path(str(xb['station'])).name}"
    return run.get("crossbar") or xb.get("kind") or "twin"


def _sweep_size(config: dict[str, Any]) -> int | None:
    """Number of trials of a sweep from its stored config (grid product times seeds)."""
    grid = config.get("grid")
    if not isinstance(grid, dict):
        return None
    n = 1
    for values in grid.values():
        n *= len(values) if isinstance(values, list) else 1
    seeds = config.get("seeds")  # the stored (resolved) grid already holds the seed axis `seeds: n` adds
    return n * seeds if isinstance(seeds, int) and "seed" not in grid else n


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _last_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[-1] if text else ""
