"""Sweeps: many training runs on the twin over a grid of config overrides, on Dask.

A sweep file names a base run config, overrides applied to it (`set:`), and a
grid of axes.  An axis is a config key path (`crossbar.sigma`,
`train.n_samples`, `data.dataset`, `seed`) or a name the protocol derives
overrides from (`eta_eff` in the hyper-parameter map).  One trial is one
training run of the base config with the overrides of one grid point, built
with `apply_overrides` and validated like any run config before anything is
submitted.

This module holds the sweep files and their trials; running them is `hil.sweep_run`,
their cost `hil.sweep_cost`, their analysis `hil.analysis.sweep_stats`.

Trial identity is the hash of the trial's resolved config, so re-running a
sweep skips the trials already finished, a killed sweep resumes, and a failed
trial (recorded with its error) is tried again.  Workers only train; the
client alone writes to the run store (one writer), as each trial finishes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator

from hil.config import (
    PositiveInt,
    RunConfig,
    Strict,
    apply_overrides,
    read_yaml,
    resolve_config_path,
    validate_section,
)
from hil.errors import ConfigError, UserError

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

PROTOCOLS = ("noise_sweep", "clt_sweep", "hyperparam_map")
N_PIXELS = 28 * 28  # MNIST, Fashion-MNIST and KMNIST share it


class SweepConfig(Strict):
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
    onset_drop: float = Field(
        0.05, gt=0.0, lt=1.0, description="noise_sweep: sigma_onset is where mean acc falls this far below the plateau"
    )

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
        open_crossbar(topology_for(cfg, N_PIXELS, where), cfg.crossbar, seed=cfg.seed, source=where).close()


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
