"""Running a sweep: one trial per Dask task, the client alone writing each finished trial to the store.

Workers only train (`run_trial`, no store access); a failed trial is recorded with its
error and tried again on the next run of the sweep; finished ones are skipped.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hil.config import RunConfig, validate_section
from hil.errors import UserError
from hil.sweep import Sweep, Trial

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


_DATA_CACHE: dict[tuple, Any] = {}


def run_trial(config: dict[str, Any], data_dir: str | None, torch_threads: int) -> dict[str, Any]:
    """Train one run config on the twin and return its metrics (runs on a Dask worker; writes nothing)."""
    import torch

    from hil.protocols.train import topology_for, train
    from hil.registry import open_crossbar

    torch.set_num_threads(max(1, torch_threads))
    t0 = time.perf_counter()
    cfg = validate_section(RunConfig, config, "trial")
    data = trial_data(cfg, data_dir)
    topology = topology_for(cfg, data.train.images.shape[1])
    with open_crossbar(topology, cfg.crossbar, seed=cfg.seed, source="trial") as xbar:
        epochs = train(xbar, cfg, data)
    rows = [{k: v for k, v in e.items() if k != "pending"} for e in epochs]
    accs = [r["test_acc"] for r in rows]
    return {
        "final_test_acc": accs[-1] if accs else None,
        "best_test_acc": max(accs) if accs else None,
        "final_train_acc": rows[-1]["train_acc"] if rows else None,
        "epochs": rows,
        "wall_s": time.perf_counter() - t0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "torch_threads": torch.get_num_threads(),
    }


def trial_data(cfg: RunConfig, data_dir: str | None):
    """The trial's images as input voltages, cached per worker process across trials."""
    from hil.protocols.train import prepare_data

    d = cfg.data
    # every data key decides the images (size, tile, split, readout...): the cache keys on all of them
    key = (d.model_dump_json(), d.root or data_dir or os.environ.get("HIL_DATA_DIR"))
    data = _DATA_CACHE.get(key)
    if data is None:
        if len(_DATA_CACHE) > 4:
            _DATA_CACHE.clear()
        data = _DATA_CACHE[key] = prepare_data(cfg, data_dir)
    return data


# ---------------------------------------------------------------------------- the client
@dataclass
class SweepReport:
    total: int
    skipped: int
    ran: int = 0
    failed: int = 0
    wall_s: float = 0.0
    trials_per_hour: float = 0.0


def pending_trials(sweep: Sweep, store: Any, where: list[str] | None = None) -> tuple[list[Trial], int]:
    """Trials still to run (not finished in the store, matching `where`), and how many were finished."""
    check_where(sweep, where or [])
    done = {r["trial_id"] for r in store.trials(sweep.id) if r["status"] == "completed"}
    selected = [t for t in sweep.trials if _matches(t, where or [])]
    return [t for t in selected if t.id not in done], sum(t.id in done for t in selected)


def check_where(sweep: Sweep, where: list[str]) -> None:
    """Each `--where axis=value` names an axis and a value on its grid: off the grid would select nothing."""
    for item in where:
        if not any(_matches(t, [item]) for t in sweep.trials):
            key = item.partition("=")[0]
            values = ", ".join(dict.fromkeys(str(t.point[key]) for t in sweep.trials))
            raise UserError(f"--where {item}: no trial has this value; {key} takes {values}")


def _matches(trial: Trial, where: list[str]) -> bool:
    for item in where:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UserError(f"--where {item!r}: expected axis=value")
        if key not in trial.point:
            raise UserError(f"--where {item!r}: {key!r} is not an axis of this sweep ({', '.join(trial.point)})")
        if trial.point[key] != yaml.safe_load(raw) and str(trial.point[key]) != raw:
            return False
    return True


def register_sweep(sweep: Sweep, store: Any) -> None:
    """The sweep is a run of kind `sweep` in the store (id stable across re-runs)."""
    store.clear_stop(sweep.id)  # a stop asked of an earlier attempt does not stop this one
    try:
        store.run(sweep.id)
        store.lock(sweep.id)  # one client per sweep
        store.set_status(sweep.id, "running")
    except UserError:
        store.create_run(sweep.config.name, sweep.raw, kind="sweep", crossbar="twin", run_id=sweep.id)


def run_sweep(
    sweep: Sweep,
    store: Any,
    client: Any,
    *,
    data_dir: str | None = None,
    torch_threads: int = 1,
    where: list[str] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[Trial, dict[str, Any]], None] | None = None,
    pack: int | None = 1,
) -> SweepReport:
    """Submit the pending trials to `client`; record each as it finishes; a failure is recorded, not raised.

    Trials go out in packs of up to `pack` trained in lockstep (`hil.packing`; 1, the
    default: one trial per task; None: the measured choice for the network's size).
    """
    from distributed import as_completed

    from hil.packing import pack_trials, run_pack

    register_sweep(sweep, store)
    data_dir = data_dir or os.environ.get("HIL_DATA_DIR")
    if data_dir and data_dir != "embedded" and Path(data_dir).expanduser().is_dir():
        data_dir = str(Path(data_dir).expanduser().resolve())  # workers may run elsewhere
    todo, skipped = pending_trials(sweep, store, where)
    report = SweepReport(total=len(todo) + skipped, skipped=skipped)
    if on_start:
        on_start(report.total, skipped)
    t0 = time.perf_counter()
    futures = {}
    for group in pack_trials(todo, pack):
        fut = client.submit(run_pack, [t.config for t in group], data_dir, torch_threads,
                            key=f"trial-{group[0].id}-{len(group)}-{secrets.token_hex(3)}", pure=False, retries=0)
        futures[fut] = group
    try:
        for fut in as_completed(list(futures)):
            group = futures.pop(fut)
            try:
                results = fut.result()
            except Exception as exc:  # a failing trial (or pack) is recorded and the sweep goes on
                results = [{"error": _error_text(exc)}] * len(group)
            for trial, result in zip(group, results, strict=True):
                row = _trial_row(sweep, trial)
                if "error" in result:
                    row.update(status="failed", error=result["error"])
                    report.failed += 1
                else:
                    row.update(status="completed", result=result, wall_s=result["wall_s"], worker=result["worker"])
                store.put_trial(row)
                report.ran += 1
                if on_result:
                    on_result(trial, row)
    finally:
        for fut in futures:
            fut.cancel()
    report.wall_s = time.perf_counter() - t0
    report.trials_per_hour = 3600.0 * report.ran / report.wall_s if report.wall_s > 0 else 0.0
    rows = store.trials(sweep.id)
    finished = sum(r["status"] == "completed" for r in rows if r["trial_id"] in {t.id for t in sweep.trials})
    status = "completed" if finished == len(sweep.trials) else "partial"
    store.set_status(sweep.id, status, {"trials": len(sweep.trials), "completed": finished,
                                        "failed": sum(r["status"] == "failed" for r in rows)})
    return report


def _trial_row(sweep: Sweep, trial: Trial) -> dict[str, Any]:
    return {"sweep_id": sweep.id, "trial_id": trial.id, "idx": trial.index, "point": trial.point,
            "config": trial.config, "status": "", "result": None, "error": None, "wall_s": None, "worker": None}


def _error_text(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip()[-2000:]


def local_client(workers: int):
    """A `distributed.LocalCluster` of single-task worker processes and a client on it.

    Each worker runs one trial at a time; the trial sets its own torch thread count.
    """
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        memory_limit=0,
    )
    return Client(cluster)


def machine_split(cores: int | None = None, threads: int | None = None, workers: int | None = None) -> tuple[int, int]:
    """Workers x torch threads: one single-threaded worker per core unless told otherwise.

    Several torch (OpenMP) threads per worker pay off only on idle cores: on a shared or
    oversubscribed machine their spin-waits can slow a trial down by orders of magnitude.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = threads or 1
    return workers or max(1, cores // threads), threads
