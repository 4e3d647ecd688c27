"""Sweeps: many training runs on the twin over a grid of config overrides, on Dask.

A sweep file names a base run config, overrides applied to it (`set:`), and a
grid of axes.  An axis is a config key path (`crossbar.sigma`,
`train.n_samples`, `data.dataset`, `seed`) or a name the protocol derives
overrides from (`eta_eff` in the hyper-parameter map).  One trial is one
training run of the base config with the overrides of one grid point, built
with `apply_overrides` and validated like any run config before anything is
submitted.

Trial identity is the hash of the trial's resolved config, so re-running a
sweep skips the trials already finished, a killed sweep resumes, and a failed
trial (recorded with its error) is tried again.  Workers only train; the
client alone writes to the run store (one writer), as each trial finishes.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import logging
import math
import os
import secrets
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PositiveInt, field_validator

from hil.config import (
    RunConfig,
    _Strict,
    apply_overrides,
    read_yaml,
    resolve_config_path,
    validate_section,
)
from hil.errors import ConfigError, UserError

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

PROTOCOLS = ("noise_sweep", "clt_sweep", "hyperparam_map")
DATASET_SIZES = {"train": 60_000, "test": 10_000}  # MNIST, Fashion-MNIST and KMNIST share them
N_PIXELS = 28 * 28  # likewise


class SweepConfig(_Strict):
    """A sweep file: base run config + overrides + grid + what the protocol's analysis needs."""

    name: str
    protocol: Literal["noise_sweep", "clt_sweep", "hyperparam_map"]
    description: str = ""
    base: str = Field(description="run config (path, relative to the sweep file, or the name of a shipped one)")
    set: list[str] = Field(default_factory=list, description="overrides applied to the base before the grid")
    grid: dict[str, list[Any]] = Field(description="axis -> values; the trials are their Cartesian product")
    seeds: PositiveInt | None = Field(None, description="shortcut for a `seed: [0 .. seeds-1]` axis")
    converged_acc: float = Field(
        0.5, gt=0.0, lt=1.0, description="a trial has converged if its final test accuracy is >= this"
    )
    target_acc: float = Field(0.9, gt=0.0, lt=1.0, description="clt_sweep: sigma_max(N) is where mean acc reaches this")
    default_tile: dict[str, float] = Field(
        default_factory=dict, description="hyperparam_map: the paper's default point, marked on the heat maps"
    )
    chance_acc: float = Field(0.1, description="accuracy of guessing (10 classes)")

    @field_validator("grid")
    @classmethod
    def _axes(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for axis, values in grid.items():
            if not values:
                raise ValueError(f"axis {axis!r} has no values")
            if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
                raise ValueError(f"axis {axis!r} repeats a value")
        return grid


@dataclass
class Trial:
    """One grid point: its axis values, the overrides they make, and the resolved run config."""

    index: int
    point: dict[str, Any]
    overrides: list[str]
    config: dict[str, Any]
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or config_hash(self.config)


@dataclass
class Sweep:
    """A loaded sweep: its config, where it came from, and every trial, validated."""

    config: SweepConfig
    source: str
    base: dict[str, Any]
    trials: list[Trial]
    id: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def protocol(self):
        return protocol_module(self.config.protocol)


def protocol_module(name: str):
    """The protocol's module (`hil.protocols.<name>`): derived axes and the analysis of its table."""
    return importlib.import_module(f"hil.protocols.{name}")


def config_hash(config: dict[str, Any]) -> str:
    """Trial identity: sha256 of the resolved run config as canonical JSON (16 hex digits)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def yaml_value(value: Any) -> str:
    """A value as YAML text that `apply_overrides` reads back to the same value (1e-06 stays a float)."""
    key = json.dumps(value, sort_keys=True)
    if key not in _YAML_TEXT:
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        _YAML_TEXT[key] = text.removesuffix("...").strip()
    return _YAML_TEXT[key]


_YAML_TEXT: dict[str, str] = {}


def resolve_sweep_path(name: str) -> Path:
    return resolve_config_path(name)


def load_sweep(name: str | Path, extra_set: list[str] | None = None) -> Sweep:
    """Read a sweep file, expand its grid, and validate every trial's run config (nothing runs yet)."""
    path = resolve_sweep_path(str(name))
    raw = read_yaml(path)
    cfg = validate_section(SweepConfig, raw, str(path))
    base_path = _base_path(cfg.base, path)
    base = apply_overrides(read_yaml(base_path), [*cfg.set, *(extra_set or [])], f"{path}: set")
    grid = dict(cfg.grid)
    if cfg.seeds is not None:
        if "seed" in grid:
            raise ConfigError(f"{path}: seeds: give either `seeds: n` or a `seed` axis in the grid, not both")
        grid["seed"] = list(range(cfg.seeds))
    module = protocol_module(cfg.protocol)
    # Expand axis by axis (the first outermost, as itertools.product): each override is parsed
    # once per node of the tree rather than once per trial.
    nodes: list[tuple[dict[str, Any], list[str], dict[str, Any]]] = [({}, [], base)]
    for axis in grid:
        nodes = [
            ({**point, axis: v}, ovr + new, apply_overrides(data, new, str(path)) if new else data)
            for point, ovr, data in nodes
            for v in grid[axis]
            for new in [[] if _is_derived(axis) else [f"{axis}={yaml_value(v)}"]]
        ]
    trials = []
    for index, (point, overrides, data) in enumerate(nodes):
        derived = {k: v for k, v in point.items() if _is_derived(k)}
        if derived:
            if not hasattr(module, "derived_overrides"):
                raise ConfigError(f"{path}: grid: axes {', '.join(derived)} are not config key paths "
                                  "(e.g. crossbar.sigma)")
            extra = module.derived_overrides(derived, point, base)
            overrides, data = overrides + extra, apply_overrides(data, extra, str(path))
        where = f"{path} (trial {index}: {_point_text(point)})"
        run_cfg = validate_section(RunConfig, data, where)
        if run_cfg.crossbar.get("kind", "twin") != "twin":
            raise ConfigError(f"{where}: crossbar.kind: sweeps train the twin only, got {run_cfg.crossbar['kind']!r}")
        trials.append(Trial(index, point, overrides, run_cfg.model_dump(mode="json")))
    _check_crossbars(trials, str(path))
    ids = [t.id for t in trials]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: grid: two grid points give the same run config (an axis has no effect?)")
    digest = hashlib.sha256(json.dumps([cfg.name, cfg.protocol, ids]).encode()).hexdigest()[:8]
    resolved = {**cfg.model_dump(mode="json"), "grid": grid, "base_resolved": base}
    return Sweep(cfg, str(path), base, trials, f"sweep-{cfg.name}-{digest}", resolved)


def _check_crossbars(trials: list[Trial], source: str) -> None:
    """Build each distinct `crossbar:` section once, so that its errors show before anything runs."""
    from hil.protocols.train import topology_for
    from hil.registry import open_crossbar

    seen: set[str] = set()
    for t in trials:
        key = json.dumps([t.config["crossbar"], t.config["network"]], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        cfg = validate_section(RunConfig, t.config, source)
        where = f"{source} (trial {t.index}: {_point_text(t.point)})"
        open_crossbar(topology_for(cfg, N_PIXELS), cfg.crossbar, seed=cfg.seed, source=where).close()


def _is_derived(axis: str) -> bool:
    """An axis that is not a config key path: the protocol turns it into overrides (eta_eff)."""
    return "." not in axis and axis != "seed"


def _base_path(base: str, sweep_path: Path) -> Path:
    beside = sweep_path.parent / base
    if beside.is_file():
        return beside
    if not Path(base).suffix and (sweep_path.parent / f"{base}.yaml").is_file():
        return sweep_path.parent / f"{base}.yaml"
    return resolve_config_path(base)


def _point_text(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


# ---------------------------------------------------------------------------- the trial (on a worker)
_DATA_CACHE: dict[tuple, Any] = {}


def run_trial(config: dict[str, Any], data_dir: str | None, torch_threads: int) -> dict[str, Any]:
    """Train one run config on the twin and return its metrics (runs on a Dask worker; writes nothing)."""
    import torch

    from hil.protocols.train import prepare_data, topology_for, train
    from hil.registry import open_crossbar

    torch.set_num_threads(max(1, torch_threads))
    t0 = time.perf_counter()
    cfg = validate_section(RunConfig, config, "trial")
    d = cfg.data
    key = (d.dataset, d.root or data_dir or os.environ.get("HIL_DATA_DIR"), d.train_subset, d.test_subset, d.input_gain)
    data = _DATA_CACHE.get(key)
    if data is None:
        if len(_DATA_CACHE) > 4:
            _DATA_CACHE.clear()
        data = _DATA_CACHE[key] = prepare_data(cfg, data_dir)
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
    done = {r["trial_id"] for r in store.trials(sweep.id) if r["status"] == "completed"}
    selected = [t for t in sweep.trials if _matches(t, where or [])]
    return [t for t in selected if t.id not in done], sum(t.id in done for t in selected)


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
    try:
        store.run(sweep.id)
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
) -> SweepReport:
    """Submit the pending trials to `client`; record each as it finishes; a failure is recorded, not raised."""
    from distributed import as_completed

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
    for trial in todo:
        fut = client.submit(run_trial, trial.config, data_dir, torch_threads,
                            key=f"trial-{trial.id}-{secrets.token_hex(3)}", pure=False, retries=0)
        futures[fut] = trial
    try:
        for fut in as_completed(list(futures)):
            trial = futures.pop(fut)
            row = _trial_row(sweep, trial)
            try:
                result = fut.result()
            except Exception as exc:  # a failing trial is recorded and the sweep goes on
                row.update(status="failed", error=_error_text(exc))
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


# ---------------------------------------------------------------------------- results
def trial_table(sweep: Sweep, store: Any) -> list[dict[str, Any]]:
    """One flat row per trial of the sweep, in grid order: axes, status, accuracies, converged."""
    stored = {r["trial_id"]: r for r in store.trials(sweep.id)}
    rows = []
    for t in sweep.trials:
        r = stored.get(t.id)
        res = (r or {}).get("result") or {}
        final = res.get("final_test_acc")
        cfg = t.config
        eta = cfg["train"]["eta"][0] if isinstance(cfg["train"]["eta"], list) else cfg["train"]["eta"]
        rows.append({
            "trial": t.index,
            "trial_id": t.id,
            "dataset": cfg["data"]["dataset"],
            "sigma": float(cfg["crossbar"].get("sigma", 0.0)),
            "n_samples": cfg["train"]["n_samples"],
            "beta": cfg["train"]["beta"],
            "eta": eta,
            "eta_eff": float(f"{eta / cfg['train']['beta']:.6g}"),
            "seed": cfg["seed"],
            **{k: v for k, v in t.point.items() if k not in _RESOLVED_AXES},
            "status": r["status"] if r else "pending",
            "final_test_acc": final,
            "best_test_acc": res.get("best_test_acc"),
            "converged": None if final is None else bool(final >= sweep.config.converged_acc),
            "wall_s": res.get("wall_s"),
            "error": (r or {}).get("error"),
        })
    return rows


_RESOLVED_AXES = {"data.dataset", "crossbar.sigma", "train.n_samples", "train.beta", "train.eta", "eta_eff", "seed"}


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------------------- cost estimate
def _trial_work(cfg: RunConfig) -> tuple[float, float]:
    """(train samples, test samples) a trial processes, over all its epochs."""
    n_train = cfg.data.train_subset or DATASET_SIZES["train"]
    n_test = cfg.data.test_subset or DATASET_SIZES["test"]
    if cfg.data.root == "embedded":
        from hil.datasets import load_embedded

        tr, te = load_embedded()
        n_train, n_test = min(n_train, len(tr)), min(n_test, len(te))
    batches = math.ceil(n_train / cfg.train.batch_size)
    if cfg.train.max_batches:
        batches = min(batches, cfg.train.max_batches)
    return cfg.train.epochs * batches * cfg.train.batch_size, cfg.train.epochs * n_test


def _net_size(cfg: RunConfig) -> float:
    layers = [1568, *cfg.network.hidden, 10]
    return float(sum(a * b for a, b in itertools.pairwise(layers)))


def calibrate(cfg_raw: dict[str, Any], torch_threads: int = 1, batches: int = 60) -> dict[str, float]:
    """Seconds per training sample and per test sample of one trial's network, on the embedded MNIST subset."""
    data = apply_overrides(cfg_raw, ["data.root=embedded", "data.dataset=mnist", "train.epochs=1",
                                     f"train.max_batches={batches}", "data.test_subset=512"], "calibration")
    probe = validate_section(RunConfig, data, "calibration")
    res = run_trial(probe.model_dump(mode="json"), None, torch_threads)
    ep = res["epochs"][0]
    n_tr = batches * probe.train.batch_size
    eval_s = max(res["wall_s"] - ep["wall_s"], 1e-6)
    return {"train_s_per_sample": ep["wall_s"] / n_tr, "test_s_per_sample": eval_s / 512,
            "net_size": _net_size(probe), "batch_size": probe.train.batch_size}


def estimate(sweep: Sweep, store: Any, workers: int, torch_threads: int = 1,
             where: list[str] | None = None, calibrate_anyway: bool = False) -> dict[str, Any]:
    """Projected cost: time per trial (measured on finished trials, or modelled by a short calibration)."""
    todo, skipped = pending_trials(sweep, store, where)
    done = [r for r in store.trials(sweep.id) if r["status"] == "completed" and r["wall_s"]]
    out: dict[str, Any] = {"sweep": sweep.id, "trials": len(sweep.trials), "pending": len(todo),
                           "finished": skipped, "workers": workers, "torch_threads": torch_threads}
    if not todo:
        out.update(per_trial_s=0.0, total_s=0.0, method="nothing to run")
        return out
    if done and not calibrate_anyway:
        per = [r["wall_s"] for r in done]
        mean = sum(per) / len(per)
        out.update(method=f"measured: mean of {len(per)} finished trials", per_trial_s=mean,
                   total_s=mean * len(todo) / workers)
        return out
    cal_cache: dict[tuple, dict[str, float]] = {}
    costs = []
    for t in todo:
        cfg = validate_section(RunConfig, t.config, "trial")
        key = (tuple(cfg.network.hidden), cfg.train.batch_size)
        if key not in cal_cache:
            cal_cache[key] = calibrate(t.config, torch_threads)
        cal = cal_cache[key]
        n_tr, n_te = _trial_work(cfg)
        costs.append(n_tr * cal["train_s_per_sample"] + n_te * cal["test_s_per_sample"])
    mean = sum(costs) / len(costs)
    out.update(method=f"modelled: {len(cal_cache)} calibration run(s) of 60 batches on the embedded subset",
               per_trial_s=mean, total_s=sum(costs) / workers, calibration=list(cal_cache.values()))
    return out


# ---------------------------------------------------------------------------- analysis helpers
def group_stats(table: list[dict[str, Any]], keys: list[str], converged_acc: float) -> list[dict[str, Any]]:
    """Mean, spread and convergence of final test accuracy per group of trials (over seeds).

    Failed trials count in `n_failed` and as not converged; pending ones are left out.
    """
    import numpy as np

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in table:
        if row["status"] == "pending":
            continue
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for key, rows in sorted(groups.items(), key=lambda kv: tuple(str(v) if isinstance(v, str) else v
                                                                  for v in kv[0])):
        accs = np.array([r["final_test_acc"] for r in rows if r["status"] == "completed"
                         and finite(r["final_test_acc"])], dtype=float)
        n_conv = int((accs >= converged_acc).sum())
        out.append({
            **dict(zip(keys, key, strict=True)),
            "n": len(rows),
            "n_failed": sum(r["status"] == "failed" for r in rows),
            "mean_acc": float(accs.mean()) if accs.size else float("nan"),
            "std_acc": float(accs.std(ddof=1)) if accs.size > 1 else 0.0,
            "min_acc": float(accs.min()) if accs.size else float("nan"),
            "max_acc": float(accs.max()) if accs.size else float("nan"),
            "frac_converged": n_conv / len(rows),
        })
    return out


def log_crossing(xs: list[float], ys: list[float], level: float) -> tuple[float | None, str]:
    """Where ys first falls below `level`, going up in x, interpolated linearly in log x.

    Returns (x, how): how is 'interpolated', 'below at the first point' (x None) or
    'never below' (x = the last x, a lower bound).
    """
    pairs = sorted((x, y) for x, y in zip(xs, ys, strict=True) if x > 0 and finite(y))
    if not pairs:
        return None, "no data"
    if pairs[0][1] < level:
        return None, "below at the first point"
    for (x0, y0), (x1, y1) in itertools.pairwise(pairs):
        if y1 < level:
            f = (y0 - level) / (y0 - y1)
            return 10 ** (math.log10(x0) + f * (math.log10(x1) - math.log10(x0))), "interpolated"
    return pairs[-1][0], "never below"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def open_sweep(name: str, store: Any, extra_set: list[str] | None = None) -> tuple[SweepConfig, str, list[Trial]]:
    """A sweep by file (or shipped name), or by the id (or id prefix) of one in the store."""
    path = resolve_sweep_path(name)
    if path.is_file():
        sweep = load_sweep(path, extra_set)
        return sweep.config, sweep.id, sweep.trials
    try:
        run = store.run(name)
    except UserError:
        raise UserError(f"{name!r} is neither a sweep file nor a sweep in {store.path} "
                        "(see `hil runs list`)") from None
    if run["kind"] != "sweep":
        raise UserError(f"run {run['id']} is a {run['kind']} run, not a sweep")
    raw = {k: v for k, v in run["config"].items() if k in SweepConfig.model_fields}
    cfg = validate_section(SweepConfig, raw, f"sweep {run['id']}")
    trials = [Trial(r["idx"], r["point"], [], r["config"], r["trial_id"]) for r in store.trials(run["id"])]
    return cfg, run["id"], trials


def table_for(cfg: SweepConfig, sweep_id: str, trials: list[Trial], store: Any) -> list[dict[str, Any]]:
    stub = Sweep(cfg, "", {}, trials, sweep_id)
    return trial_table(stub, store)
