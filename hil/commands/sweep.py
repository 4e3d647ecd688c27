"""`hil sweep`: a grid of training runs on the twin, on a Dask cluster, resumable and recorded trial by trial."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from hil.errors import UserError
from hil.runner import StopWatcher
from hil.store import Store

console = Console()


_H = {
    "config": "sweep YAML, or a shipped one (noise_sweep-small, clt_sweep-small, ...)",
    "set": "override a key of the base config: --set train.epochs=2",
    "where": "run only the trials with axis=value: --where data.dataset=mnist",
    "workers": "local Dask workers (default: cores / threads)",
    "threads": "torch threads per worker (default 1)",
    "scheduler": "address of a running Dask scheduler (tcp://host:8786) instead of a LocalCluster",
    "data_dir": "data root with mnist/, fashion-mnist/, kmnist/ (or HIL_DATA_DIR)",
    "workspace": "folder of the run store (default ./hil-runs or HIL_WORKSPACE)",
    "pack": "trials trained in lockstep per task (1: none; 0: by network size, see docs/results/packing.md)",
}


def sweep_command(
    config: Annotated[str, typer.Argument(help=_H["config"])],
    set_: Annotated[list[str] | None, typer.Option("--set", help=_H["set"])] = None,
    where: Annotated[list[str] | None, typer.Option(help=_H["where"])] = None,
    workers: Annotated[int | None, typer.Option(help=_H["workers"], min=1)] = None,
    threads: Annotated[int | None, typer.Option(help=_H["threads"], min=1)] = None,
    scheduler: Annotated[str | None, typer.Option(help=_H["scheduler"])] = None,
    data_dir: Annotated[str | None, typer.Option(help=_H["data_dir"])] = None,
    workspace: Annotated[str | None, typer.Option(help=_H["workspace"])] = None,
    pack: Annotated[int, typer.Option(min=0, help=_H["pack"])] = 1,
    estimate_: Annotated[bool, typer.Option("--estimate", help="print the projected cost and run nothing")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Run every trial of a sweep not yet finished in the store; a killed sweep resumes where it stopped."""
    from hil.analysis.sweep_stats import trial_table
    from hil.config import blame_overrides
    from hil.datasets import choose_root
    from hil.sweep import load_sweep
    from hil.sweep_run import check_where, local_client, machine_split, pending_trials, run_sweep

    with blame_overrides(set_ or []):
        sweep = load_sweep(config, set_ or [])
    check_where(sweep, where or [])
    for root in sorted({(t.config.get("data") or {}).get("root") for t in sweep.trials} - {None}):
        note = choose_root(root, data_dir)[1]  # the trials read the config's root, as `hil train` does
        if note:
            console.print(note, highlight=False)
    store = Store(workspace)
    n_workers, n_threads = machine_split(threads=threads, workers=workers)
    if scheduler:
        n_threads = threads or 1
    todo, done = pending_trials(sweep, store, where)
    console.print(f"sweep [bold]{sweep.id}[/] ({sweep.config.protocol}): {len(sweep.trials)} trials, "
                  f"{done} finished, {len(todo)} to run; store {store.path}", highlight=False)
    if estimate_:
        _print_estimate(sweep, store, n_workers, n_threads, where, pack or None)
        return
    if not todo:
        console.print(f"nothing to run; plot with: hil plot {_figure(sweep.config.protocol)} {sweep.id}")
        return
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise UserError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        cluster_text = f"scheduler {scheduler}"
    else:
        client = local_client(n_workers)
        cluster_text = f"LocalCluster {n_workers} worker(s) x {n_threads} torch thread(s)"
    console.print(cluster_text, highlight=False)
    progress = Progress(
        TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TextColumn("failed {task.fields[failed]}"),
        TextColumn("last {task.fields[last]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, disable=quiet,
    )
    state: dict[str, Any] = {}

    def on_start(total: int, skipped: int) -> None:
        state["task"] = progress.add_task("sweep", total=total - skipped, failed=0, last="-")

    def on_result(trial, row) -> None:
        res = row.get("result") or {}
        acc = res.get("final_test_acc")
        last = f"{acc:.3f}" if isinstance(acc, float) else row["status"]
        progress.update(state["task"], advance=1, last=last,
                        failed=progress.tasks[0].fields["failed"] + (row["status"] == "failed"))
        if row["status"] == "failed":
            progress.console.print(f"[red]trial {trial.index} failed[/] ({_point(trial.point)}): "
                                   f"{row['error'].splitlines()[-1]}", highlight=False)

    t0 = time.perf_counter()
    try:
        with progress, StopWatcher(store.workspace, sweep.id):  # the dashboard's stop button: as Ctrl-C
            report = run_sweep(sweep, store, client, data_dir=data_dir, torch_threads=n_threads, where=where,
                               on_start=on_start, on_result=on_result, pack=pack or None)
    except KeyboardInterrupt:
        done_now = sum(r["status"] == "completed" for r in store.trials(sweep.id))
        console.print(f"interrupted: {done_now} of {len(sweep.trials)} trials recorded; "
                      "run the same command again to finish the rest", highlight=False)
        store.set_status(sweep.id, "interrupted")
        raise typer.Exit(130) from None
    finally:
        client.close()
        if not scheduler:
            client.cluster.close()
    console.print(
        f"ran {report.ran} trial(s) ({report.failed} failed) in {report.wall_s:.0f} s: "
        f"{report.trials_per_hour:,.0f} trials/hour; {report.skipped} skipped as finished; "
        f"total {time.perf_counter() - t0:.0f} s", highlight=False)
    console.print(f"plot with: hil plot {_figure(sweep.config.protocol)} {sweep.id}"
                  + (f" --workspace {workspace}" if workspace else ""), highlight=False)
    rows = trial_table(sweep, store)
    print(json.dumps({"sweep": sweep.id, "ran": report.ran, "failed": report.failed, "skipped": report.skipped,
                      "wall_s": round(report.wall_s, 2), "trials_per_hour": round(report.trials_per_hour, 1),
                      "workers": n_workers if not scheduler else None,
                      "pending": sum(r["status"] == "pending" for r in rows)}))
    if report.failed:
        raise typer.Exit(1)


def _print_estimate(sweep, store, workers: int, threads: int, where, pack: int | None) -> None:
    from hil.sweep_cost import estimate

    with console.status("calibrating: a short training run per network size"):
        est = estimate(sweep, store, workers, threads, where, pack=pack)
    table = Table("figure", "value", title=f"projected cost of {sweep.id}")
    table.add_row("trials to run", f"{est['pending']} of {est['trials']}")
    table.add_row("time per trial", _dur(est["per_trial_s"]))
    table.add_row("how", est["method"])
    table.add_row("workers x torch threads", f"{workers} x {threads}")
    table.add_row("projected wall time", _dur(est["total_s"]))
    table.add_row("projected CPU-core hours", f"{est['total_s'] * workers * threads / 3600:,.2f}")
    console.print(table)
    print(json.dumps({k: v for k, v in est.items() if k != "calibration"}))


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _figure(protocol: str) -> str:
    return {"noise_sweep": "fig3", "clt_sweep": "fig4", "hyperparam_map": "fig5"}[protocol]


def _point(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)
