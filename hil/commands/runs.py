"""`hil runs`: what has run, and how each run went."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from hil.store import Store

console = Console(soft_wrap=True)
runs_app = typer.Typer(help="List and inspect stored runs.", no_args_is_help=True)


@runs_app.command("list")
def list_runs(
    workspace: Annotated[str | None, typer.Option(help="run store folder (default ./hil-runs)")] = None,
    kind: Annotated[str | None, typer.Option(help="only runs of this kind (train, trial, characterize, ...)")] = None,
) -> None:
    """One line per run: id (in full), status, epochs done and test accuracy."""
    store = Store(workspace, create=False)
    runs = store.runs(kind=kind)
    table = Table()
    for column in ("id", "kind", "status", "started", "epochs", "test acc"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        epochs = store.epochs(run["id"])
        acc = f"{epochs[-1]['test_acc']:.4f}" if epochs and epochs[-1]["test_acc"] is not None else "-"
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created_s"]))
        table.add_row(run["id"], run["kind"], run["status"], started, str(len(epochs)), acc)
    # never cut a cell (the id is what other commands take): wider than the terminal if need be
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(console.width, needed)).print(table)


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    workspace: Annotated[str | None, typer.Option(help="run store folder (default ./hil-runs)")] = None,
    plot: Annotated[Path | None, typer.Option(help="also save the learning curve to this PNG/PDF")] = None,
    config: Annotated[bool, typer.Option(help="print the resolved config as JSON")] = False,
) -> None:
    """The run's status, its per-epoch curve, and optionally its config and a plot."""
    store = Store(workspace, create=False)
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
    signal = store.layer_signal(run["id"])
    if signal:
        console.print(signal_table(signal))
    if config:
        console.print_json(json.dumps(run["config"]))
    if plot is not None:
        from hil.plots import learning_curve

        learning_curve(epochs, run["id"], plot)
        console.print(f"saved {plot}")


def signal_table(rows: list[dict]) -> Table:
    """Per epoch and layer: the EP signal, the read noise on it and their ratio (hil.diagnostics)."""
    from hil.diagnostics import layer_name  # imports torch: only when a run is shown

    depth = max(r["layer"] for r in rows)
    table = Table("epoch", "layer", "|ds| med V", "|ds| rms V", "read σ V", "noise V", "SNR", "active",
                  title="EP signal per layer (ds = s(β2) - s(β1) on active nodes)",
                  caption="read σ: from the N reads, or * as configured; noise = read σ / √N; SNR = med / noise")

    def num(v: float | None, fmt: str = ".2e") -> str:
        return "-" if v is None else format(v, fmt)

    for r in rows:
        snr = "inf" if r["snr"] is None and r["noise"] == 0.0 else num(r["snr"], ".3g")
        sigma = num(r["read_sigma"]) + ("" if r["noise_source"] == "measured" else "*")
        table.add_row(str(r["epoch"] + 1), layer_name(r["layer"], depth), num(r["signal_median"]),
                      num(r["signal_rms"]), sigma, num(r["noise"]), snr, num(r["active_frac"], ".2f"))
    return table


@runs_app.command("export")
def export_run(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    format_: Annotated[str, typer.Option("--format", help="csv, parquet or netcdf")] = "csv",
    out: Annotated[Path, typer.Option(help="folder for the files")] = Path("."),
    workspace: Annotated[str | None, typer.Option(help="run store folder (default ./hil-runs)")] = None,
) -> None:
    """Write a run's epochs, batches, trials and raw samples for pandas, xarray or a spreadsheet."""
    from hil.export import export_run as export
    from hil.workspace import open_workspace

    with open_workspace(workspace) as ws:
        for path in export(ws, run_id, format_, out):
            console.print(f"wrote {path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
