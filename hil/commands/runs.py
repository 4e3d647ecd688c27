"""`hil runs`: what has run, and how each run went."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hil.store import Store

console = Console(soft_wrap=True)
runs_app = typer.Typer(help="List and inspect stored runs.", no_args_is_help=True)


@runs_app.command("list")
def list_runs(
    workspace: Annotated[str | None, typer.Option(help="run store folder (default ./hil-runs)")] = None,
    kind: Annotated[str | None, typer.Option(help="only runs of this kind (train, trial, characterize, ...)")] = None,
) -> None:
    """One line per run: id, status, epochs done and test accuracy."""
    store = Store(workspace)
    table = Table("id", "kind", "status", "started", "epochs", "test acc")
    for run in store.runs(kind=kind):
        epochs = store.epochs(run["id"])
        acc = f"{epochs[-1]['test_acc']:.4f}" if epochs and epochs[-1]["test_acc"] is not None else "-"
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created_s"]))
        table.add_row(run["id"], run["kind"], run["status"], started, str(len(epochs)), acc)
    console.print(table)


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    workspace: Annotated[str | None, typer.Option(help="run store folder (default ./hil-runs)")] = None,
    plot: Annotated[Path | None, typer.Option(help="also save the learning curve to this PNG/PDF")] = None,
    config: Annotated[bool, typer.Option(help="print the resolved config as JSON")] = False,
) -> None:
    """The run's status, its per-epoch curve, and optionally its config and a plot."""
    store = Store(workspace)
    run = store.run(run_id)
    console.print(f"[bold]{run['id']}[/]  {run['kind']}  {run['status']}  code {run['code_version']}", highlight=False)
    if run["summary"]:
        console.print("summary: " + ", ".join(f"{k}={v}" for k, v in run["summary"].items()), highlight=False)
    epochs = store.epochs(run["id"])
    table = Table("epoch", "train acc", "test acc", "test loss", "samples/s", "wall s")
    for e in epochs:
        table.add_row(str(e["epoch"] + 1), f"{e['train_acc']:.4f}", f"{e['test_acc']:.4f}", f"{e['test_loss']:.4f}",
                      f"{e['samples_per_s']:,.0f}", f"{e['wall_s']:.1f}")
    console.print(table)
    if config:
        console.print_json(json.dumps(run["config"]))
    if plot is not None:
        from hil.plots import learning_curve

        learning_curve(epochs, run["id"], plot)
        console.print(f"saved {plot}")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
