"""`hil diagnose`: predict the critical read noise from the EP signal of one noiseless run, without a sweep.

A layer's update is swamped once the noise on each measured voltage, sigma / sqrt(N), grows
past its EP signal |s(beta_2) - s(beta_1)| divided by a critical SNR.  So from the signal
of a noiseless run (hil.diagnostics), the onset is predicted as

    sigma_onset(N) = signal / SNR_crit * sqrt(N) * sqrt(B / 4)

per layer, for the run's batch size B (an update averages the noise of B samples; SNR_crit was
set at batch 4); the network's onset is the smallest over layers (the hidden layer, whose
signal is the weakest).  SNR_crit is one number for the method, not per dataset: it is set once
by comparing a measured sigma_onset of one sweep with the signal of that sweep's lowest-noise
trials (`--onset SIGMA` prints the SNR_crit that a measured onset implies), then used for
every other dataset, width, batch size and N (docs/results/README.md gives the value and
where it came from).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hil.errors import UserError
from hil.store import Store

console = Console(soft_wrap=True)


def signal_of(store: Store, run_id: str, epoch: int | None,
              dataset: str | None = None) -> tuple[dict[str, Any], dict[int, float], float, int]:
    """The run (or sweep), the mean EP signal per layer over its epochs (or one), the largest noise seen, the batch."""
    from hil.config import TrainConfig

    default_batch = TrainConfig.model_fields["batch_size"].default
    run = store.run(run_id)
    rows: list[dict[str, Any]] = []
    batches: set[int] = set()
    if run["kind"] == "sweep":
        trials = [t for t in store.trials(run["id"]) if t["status"] == "completed"
                  and dataset in (None, t["config"]["data"]["dataset"])]
        if not trials:
            raise UserError(f"sweep {run['id']} has no finished trial" + (f" on {dataset}" if dataset else ""))
        datasets = {t["config"]["data"]["dataset"] for t in trials}
        if len(datasets) > 1:
            raise UserError(f"sweep {run['id']} holds {', '.join(sorted(datasets))}: diagnose one with --dataset")
        low = min(float(t["config"]["crossbar"].get("sigma", 0.0)) for t in trials)
        for t in trials:
            if float(t["config"]["crossbar"].get("sigma", 0.0)) == low:
                batches.add(int(t["config"]["train"].get("batch_size", default_batch)))
                for e in t["result"].get("epochs", []):
                    rows += [dict(r, epoch=e["epoch"]) for r in e.get("signal") or []]
    else:
        rows = store.layer_signal(run["id"])
        batches.add(int((run["config"].get("train") or {}).get("batch_size", default_batch)))
    if len(batches) > 1:
        raise UserError(f"sweep {run['id']}: its lowest-sigma trials train at batch sizes {sorted(batches)}; "
                        "diagnose one run")
    if epoch is not None:
        rows = [r for r in rows if r["epoch"] == epoch - 1]
    rows = [r for r in rows if r["signal_median"] is not None]
    if not rows:
        raise UserError(f"run {run['id']} has no EP signal diagnostics"
                        + (f" for epoch {epoch}" if epoch is not None else " (trained before they existed?)"))
    by_layer: dict[int, list[float]] = {}
    for r in rows:
        by_layer.setdefault(r["layer"], []).append(r["signal_median"])
    noise = max((r["noise"] or 0.0) for r in rows)
    return run, {k: sum(v) / len(v) for k, v in sorted(by_layer.items())}, noise, batches.pop()


def diagnose_command(
    run: Annotated[str, typer.Argument(help="a noiseless training run, or a sweep (its lowest-sigma trials)")],
    n: Annotated[list[int] | None, typer.Option("--n", help="reads averaged per node (repeat: --n 1 --n 16)")] = None,
    snr_crit: Annotated[float | None, typer.Option(
        help="critical SNR of a layer's update (default hil.diagnostics.DEFAULT_SNR_CRIT; see docs/results)")] = None,
    onset: Annotated[float | None, typer.Option(help="a measured sigma_onset (V, N=1): print the SNR_crit it "
                                                    "implies")] = None,
    epoch: Annotated[int | None, typer.Option(help="use this epoch's signal (default: mean over epochs)")] = None,
    dataset: Annotated[str | None, typer.Option(help="a sweep's trials on this dataset only")] = None,
    workspace: Annotated[str | None, typer.Option(help="folder of the run store")] = None,
) -> None:
    """Predict sigma_onset for N reads from a noiseless run's EP signal: signal / SNR_crit x sqrt(N) x sqrt(B / 4)."""
    from hil.diagnostics import DEFAULT_SNR_CRIT, REF_BATCH, layer_name, predict_onset  # torch: not for `hil --help`

    snr_crit = DEFAULT_SNR_CRIT if snr_crit is None else snr_crit
    if snr_crit <= 0:
        raise UserError(f"--snr-crit must be positive, got {snr_crit}")
    ns = n or [1, 4, 16, 64]
    if any(k < 1 for k in ns):
        raise UserError(f"--n must be >= 1, got {ns}")
    with Store(workspace) as store:
        record, signal, noise, batch = signal_of(store, run, epoch, dataset)
    depth = max(signal)
    if noise > 0:
        console.print(f"[yellow]note:[/] this run read with noise up to {noise:.2g} V per node; the measured "
                      "signal includes it (a noiseless run predicts best)", highlight=False)
    table = Table("layer", "EP signal (V)", *[f"σ_onset N={k} (V)" for k in ns],
                  title=f"{record['id']}: predicted onset, SNR_crit = {snr_crit:g}, batch {batch} "
                        f"(x sqrt({batch}/{REF_BATCH}) = {math.sqrt(batch / REF_BATCH):.3g})")
    for layer, sig in signal.items():
        table.add_row(layer_name(layer, depth), f"{sig:.2e}",
                      *[f"{predict_onset(sig, snr_crit, k, batch):.2e}" for k in ns])
    console.print(table)
    weakest = min(signal, key=signal.get)
    pred = {k: predict_onset(signal[weakest], snr_crit, k, batch) for k in ns}
    console.print(f"first layer to fail: {layer_name(weakest, depth)}; predicted sigma_onset "
                  + ", ".join(f"N={k}: {v:.2e} V" for k, v in pred.items()), highlight=False)
    out: dict[str, Any] = {"run": record["id"], "snr_crit": snr_crit, "batch_size": batch,
                           "layer": layer_name(weakest, depth),
                           "signal_v": signal[weakest], "sigma_onset": {str(k): v for k, v in pred.items()}}
    if onset is not None:
        if not (onset > 0 and math.isfinite(onset)):
            raise UserError(f"--onset must be a positive sigma in volts, got {onset}")
        out["implied_snr_crit"] = predict_onset(signal[weakest], 1.0, 1, batch) / onset
        console.print(f"a measured onset of {onset:.3g} V implies SNR_crit = {out['implied_snr_crit']:.3g}",
                      highlight=False)
    print(json.dumps(out))


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose_command)
