"""`hil train`: one EP training run on the twin or a board, stored and resumable."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from hil.errors import DataError, StoreError, UserError

if TYPE_CHECKING:
    from hil.config import RunConfig
    from hil.estimate import Estimate

console = Console(soft_wrap=True)


def train_command(
    config: Annotated[
        str | None, typer.Argument(help="config YAML, or the name of a shipped one (quickstart, drn-1h-mnist)")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: --set train.epochs=3")] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="data root with mnist/, fashion-mnist/, kmnist/ (or HIL_DATA_DIR)")
    ] = None,
    station: Annotated[
        str | None, typer.Option(help="train a board: station YAML (instruments, wiring, limits)")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="folder of the run store (default ./hil-runs or HIL_WORKSPACE)")
    ] = None,
    resume: Annotated[str | None, typer.Option(help="continue a stopped run from its last checkpoint")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
    estimate: Annotated[
        bool, typer.Option(help="print the predicted time per batch and per epoch on the station, run nothing")
    ] = False,
) -> None:
    """Train a network with Equilibrium Propagation; Ctrl-C stops at a checkpoint, --resume goes on.

    Everything is checked (config, data, crossbar section, station fit) before the store is touched,
    so input refused here leaves no workspace, no run and no file behind.
    """
    from hil.commands.train_hooks import StoreHooks
    from hil.config import RunConfig, blame_overrides, resolve_config_path, validate_section
    from hil.datasets import choose_root, fingerprint
    from hil.protocols.train import check_biases, prepare_data, topology_for, train
    from hil.registry import check_crossbar, open_crossbar
    from hil.runner import Runner, StopRequested, StopWatcher
    from hil.store import Store

    with contextlib.ExitStack() as stack:  # the store (and the run's lock) closes however this ends
        sets = set_ or []
        if resume:
            if sets or config or station:
                raise UserError("--resume continues a run with the config it started with; --set, a config file "
                                "and --station cannot change it (start a new run to change them)")
            store = stack.enter_context(Store(workspace, create=False))
            run = store.run(resume)
            run_id, raw, source = run["id"], run["config"], f"run {run['id']}"
            if run["status"] == "completed":
                raise UserError(f"run {run_id} has already completed")
            store.lock(run_id)  # a second process on the same run is refused here
            cfg = validate_section(RunConfig, raw, source)
            stored = store.artifacts(run_id).get("data")
            root = data_dir or (stored["root"] if stored else cfg.data.root)
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": root})})
        else:
            if config is None:
                raise UserError("give a config file (e.g. `hil train quickstart`) or --resume RUN")
            with blame_overrides(sets):
                cfg, raw = _load(config, sets, station)
            source, store, stored = str(resolve_config_path(config)), None, None
            root, note = choose_root(cfg.data.root, data_dir)
            if note:
                console.print(note, highlight=False)
        with blame_overrides(sets):
            data = prepare_data(cfg, root)
            topology = topology_for(cfg, data.train.images.shape[1], source)
            check_crossbar(cfg.crossbar, source, topology)  # the section, and a station's fit, before any run exists
            check_biases(cfg, source)
        kind = cfg.crossbar.get("kind", "twin")
        if estimate or kind != "twin":
            est = _estimate(cfg, data, topology, source, required=estimate)
            if estimate:
                return
            if est is not None:
                console.print(f"measured time per batch: in the progress bar (s/batch); predicted {est.batch_s:.3g} s",
                              highlight=False)
        origin = fingerprint(cfg.data.dataset, root)
        if store is None:
            store = stack.enter_context(Store(workspace))
            run_id = store.create_run(cfg.name, raw, crossbar=cfg.crossbar.get("kind", "twin"))
            store.put_artifact(run_id, "data", "json", origin)
        else:
            _check_same_data(stored, origin, run_id)
            store.set_status(run_id, "running")
        store.clear_stop(run_id)  # a stop asked of an earlier attempt does not stop this one
        console.print(f"run [bold]{run_id}[/]  layers {topology.layers}  crossbar {cfg.crossbar.get('kind', 'twin')}  "
                      f"data {origin['root'] or origin['dataset']}  store {store.path}", highlight=False)
        with Runner() as runner, StopWatcher(store.workspace, run_id):
            try:
                xbar = runner.attach(open_crossbar(topology, cfg.crossbar, seed=cfg.seed, source=source))
                epochs = train(xbar, cfg, data, StoreHooks(store, run_id, runner, cfg.train.epochs, quiet, xbar))
            except StopRequested as stop:
                store.set_status(run_id, "interrupted")
                console.print(f"{stop}; checkpoint saved. Continue with: hil train --resume {run_id} "
                              f"--workspace {store.workspace}", highlight=False)
                sys.exit(stop.exit_code)
            except BaseException:
                with contextlib.suppress(StoreError):  # a full disk may refuse this too: the dead lock says it then
                    store.set_status(run_id, "failed")
                raise
        best = max((e["test_acc"] for e in epochs), default=None)
        final = epochs[-1]["test_acc"] if epochs else None
        store.set_status(run_id, "completed", {"final_test_acc": final, "best_test_acc": best})
        if final is not None:
            console.print(f"done: final test accuracy {final:.4f} (best {best:.4f}); details: hil runs show {run_id}")


def _check_same_data(stored: dict[str, Any] | None, now: dict[str, Any], run_id: str) -> None:
    """A resumed run must read the very files it started with (runs from before this check carry no record)."""
    if stored is None:
        return
    for name, digest in stored["files"].items():
        if now["files"].get(name) != digest:
            raise DataError(f"{now['root']}: {name} is not the file run {run_id} started with (sha256 differs); "
                            f"it started on {stored['root']}")


def _estimate(cfg: RunConfig, data: Any, topology: Any, source: str, required: bool) -> Estimate | None:
    """Print the planner's table (before anything is opened); None when the crossbar has no planner."""
    from hil.estimate import planner_for
    from hil.protocols.train import training_plan

    kind = cfg.crossbar.get("kind", "twin")
    try:
        planner = planner_for(kind, source)
    except UserError:
        if required:
            raise
        return None
    est = planner(cfg.crossbar, source, training_plan(cfg, data, topology))
    console.print(est.table())
    return est


def _load(config: str, sets: list[str], station: str | None) -> tuple[RunConfig, dict[str, Any]]:
    from hil.config import RunConfig, apply_overrides, load_config, read_yaml, resolve_config_path, validate_section

    if station is None:
        return load_config(config, sets)
    path = resolve_config_path(config)
    data = apply_overrides(read_yaml(path), sets, str(path))
    data["crossbar"] = {"kind": "lab", "station": station}
    cfg = validate_section(RunConfig, data, str(path))
    return cfg, cfg.model_dump(mode="json")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
