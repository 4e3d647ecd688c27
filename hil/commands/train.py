"""`hil train`: one EP training run on the twin or a board, stored and resumable."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hil.config import (
    RunConfig,
    apply_overrides,
    load_config,
    read_yaml,
    resolve_config_path,
    validate_section,
)
from hil.diagnostics import summary_text
from hil.errors import UserError
from hil.estimate import Estimate, planner_for
from hil.interface import SupportsDescribe
from hil.protocols.train import TrainHooks, prepare_data, topology_for, train, training_plan
from hil.registry import check_crossbar, open_crossbar
from hil.runner import Runner, StopRequested, StopWatcher
from hil.store import Store

console = Console(soft_wrap=True)


class StoreHooks(TrainHooks):
    """Persist a run to the store and show a progress bar with running accuracy and samples/s.

    Besides the checkpointed rows, batches go to the store every `live_every_s` (with a
    `progress` artifact: position, samples/s), so that `hil dashboard` shows them live.
    Those rows are replayed and replaced (same key) if a killed run resumes.
    """

    live_every_s = 0.5

    def __init__(self, store: Store, run_id: str, runner: Runner, epochs: int, quiet: bool,
                 xbar: object = None) -> None:
        super().__init__()
        self.store, self.run_id, self.runner, self.n_epochs = store, run_id, runner, epochs
        self._describe = xbar.describe if isinstance(xbar, SupportsDescribe) else None  # a board's station
        self._live: list[dict[str, Any]] = []
        self._flushed = time.monotonic()
        self._position: dict[str, Any] = {}
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[of]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]:.3f}"),
            TextColumn("{task.fields[sps]:,.0f} samples/s"),
            TextColumn("{task.fields[spb]:.3g} s/batch"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=quiet,
        )
        self.task = None
        self._sps = 0.0

    def start(self, total_batches: int, done_batches: int, epoch: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=total_batches, completed=done_batches, epoch=epoch + 1, of=self.n_epochs, acc=0.0, sps=0.0,
            spb=0.0,
        )
        self._position = {"epoch": epoch, "epochs": self.n_epochs, "batches": total_batches, "batch": done_batches}

    def batch(self, row: dict[str, Any], running_acc: float, samples_per_s: float) -> None:
        self._sps = samples_per_s if not self._sps else 0.95 * self._sps + 0.05 * samples_per_s
        self.progress.update(self.task, advance=1, acc=running_acc, sps=self._sps,
                             spb=row["size"] / max(samples_per_s, 1e-12))
        self._live.append(row)
        self._position.update(batch=row["batch"] + 1, samples_per_s=self._sps, running_acc=running_acc)
        if time.monotonic() - self._flushed >= self.live_every_s:
            self._flush()

    def _flush(self) -> None:
        self.store.add_batches(self.run_id, self._live)
        self.store.put_artifact(self.run_id, "progress", "json", {**self._position, "t_s": time.time()})
        if self._describe is not None:
            self.store.put_artifact(self.run_id, "station", "json", self._describe())
        self._live, self._flushed = [], time.monotonic()

    def epoch(self, row: dict[str, Any]) -> None:
        super().epoch(row)
        self.store.add_batches(self.run_id, row["pending"])
        self.store.add_epoch(self.run_id, row)
        self._live = []  # all in `pending`, just written
        self._flush()
        self.progress.stop()
        console.print(
            f"epoch {row['epoch'] + 1}/{self.n_epochs}: train {row['train_acc']:.4f} "
            f"test {row['test_acc']:.4f} loss {row['test_loss']:.4f} "
            f"{row['samples_per_s']:,.0f}/s {row['wall_s']:.0f}s"
            + (f" | {summary_text(row['signal'])}" if row.get("signal") else ""),
            highlight=False,
        )

    def save(self, state: dict[str, Any]) -> None:
        self._flush()
        self.store.save_checkpoint(self.run_id, state)
        self.store.add_batches(self.run_id, state["tally"]["pending"])

    def load(self) -> dict[str, Any] | None:
        state = self.store.load_checkpoint(self.run_id)
        if state is not None:
            self.store.add_batches(self.run_id, state["tally"]["pending"])
        return state

    @property
    def stopping(self) -> bool:
        return self.runner.stopping

    def should_stop(self) -> None:
        self.runner.checkpoint()


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
    """Train a network with Equilibrium Propagation; Ctrl-C stops at a checkpoint, --resume goes on."""
    store = Store(workspace)
    if resume:
        run = store.run(resume)
        run_id, raw = run["id"], run["config"]
        cfg = validate_section(RunConfig, raw, f"run {run_id}")
        if run["status"] == "completed":
            raise UserError(f"run {run_id} has already completed")
    else:
        if config is None:
            raise UserError("give a config file (e.g. `hil train quickstart`) or --resume RUN")
        cfg, raw = _load(config, set_ or [], station)
        run_id = None
    source = str(resolve_config_path(config)) if config else f"run {run_id}"
    data = prepare_data(cfg, data_dir)
    topology = topology_for(cfg, data.train.images.shape[1])
    check_crossbar(cfg.crossbar, source, topology)  # the section, and a station's fit, before any run exists
    kind = cfg.crossbar.get("kind", "twin")
    if estimate or kind != "twin":
        est = _estimate(cfg, data, topology, source, required=estimate)
        if estimate:
            return
        if est is not None:
            console.print(f"measured time per batch: in the progress bar (s/batch); predicted {est.batch_s:.3g} s",
                          highlight=False)
    if run_id is None:
        run_id = store.create_run(cfg.name, raw, crossbar=cfg.crossbar.get("kind", "twin"))
    else:
        store.set_status(run_id, "running")
    store.clear_stop(run_id)  # a stop asked of an earlier attempt does not stop this one
    console.print(f"run [bold]{run_id}[/]  layers {topology.layers}  crossbar {cfg.crossbar.get('kind', 'twin')}  "
                  f"store {store.path}", highlight=False)
    with Runner() as runner, StopWatcher(store.workspace, run_id):
        try:
            xbar = runner.attach(open_crossbar(topology, cfg.crossbar, seed=cfg.seed, source=source))
            epochs = train(xbar, cfg, data, StoreHooks(store, run_id, runner, cfg.train.epochs, quiet, xbar))
        except StopRequested as stop:
            store.set_status(run_id, "interrupted")
            console.print(f"{stop}; checkpoint saved. Continue with: hil train --resume {run_id}")
            sys.exit(stop.exit_code)
        except BaseException:
            store.set_status(run_id, "failed")
            raise
    best = max((e["test_acc"] for e in epochs), default=None)
    final = epochs[-1]["test_acc"] if epochs else None
    store.set_status(run_id, "completed", {"final_test_acc": final, "best_test_acc": best})
    if final is not None:
        console.print(f"done: final test accuracy {final:.4f} (best {best:.4f}); details: hil runs show {run_id}")


def _estimate(cfg: RunConfig, data: Any, topology: Any, source: str, required: bool) -> Estimate | None:
    """Print the planner's table (before anything is opened); None when the crossbar has no planner."""
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
    if station is None:
        return load_config(config, sets)
    path = resolve_config_path(config)
    data = apply_overrides(read_yaml(path), sets, str(path))
    data["crossbar"] = {"kind": "lab", "station": station}
    cfg = validate_section(RunConfig, data, str(path))
    return cfg, cfg.model_dump(mode="json")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
