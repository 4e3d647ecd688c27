"""`hil plot`: the paper's figures from a sweep (fig3, fig4, fig5) and a run's learning curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hil.errors import UserError
from hil.store import Store

#: the figures `hil plot` draws (hil.analysis.sweep_plots.FIGURES), named so that registering imports no matplotlib
FIGURE_NAMES = ("fig3", "fig4", "fig5")

console = Console()
plot_app = typer.Typer(help="Figures: the paper's Figs. 3-5 from a sweep, or a run's learning curve.",
                       no_args_is_help=True)


def make_figure(figure: str, sweep: str, store: Store, out: Path | None = None, title: str = "",
                trials_csv: Path | None = None, predicted: dict[str, float] | None = None,
                target: float | None = None) -> tuple[dict[str, Any], list[Path]]:
    """Analyse a sweep with its protocol and write `<figure>.png/.pdf/.csv`, trials CSV and analysis JSON.

    With `trials_csv` the trial table comes from that file (a `<figure>-trials.csv` written
    before) and `sweep` names the sweep file whose analysis settings apply.  `predicted`
    (curve -> sigma) marks onsets predicted by `hil diagnose` on Fig. 3 (without it, the
    onsets diagnosed from each curve's lowest-sigma trials are marked); a Fig. 3 of a sweep
    with further axes also gets `fig3-onsets.png`, the measured and predicted onset per
    curve.  `target` replaces the sweep file's `target_acc` (Fig. 4).
    """
    from hil.analysis.sweep_plots import FIGURES, onsets
    from hil.analysis.sweep_stats import read_trial_table, table_for, write_csv
    from hil.sweep import load_sweep, open_sweep, protocol_module

    protocol, draw = FIGURES[figure]
    if trials_csv is not None:
        cfg, sweep_id = load_sweep(sweep).config, f"{Path(trials_csv).name} ({sweep})"
        if not Path(trials_csv).is_file():
            raise UserError(f"--trials {trials_csv}: no such file")
        table = read_trial_table(Path(trials_csv))
    else:
        cfg, sweep_id, trials = open_sweep(sweep, store)
    if cfg.protocol != protocol:
        raise UserError(f"{figure} shows a {protocol} sweep; {sweep_id} is a {cfg.protocol} sweep")
    if trials_csv is None:
        table = table_for(cfg, sweep_id, trials, store)
    if not any(r["status"] == "completed" for r in table):
        raise UserError(f"sweep {sweep_id} has no finished trial yet (run: hil sweep ...)")
    if target is not None:
        if not 0.0 < target < 1.0:
            raise UserError(f"--target {target}: expected an accuracy between 0 and 1, e.g. 0.9")
        cfg = cfg.model_copy(update={"target_acc": target})
    analysis = protocol_module(protocol).analyze(table, cfg)
    if predicted:
        analysis["predicted_onset"] = predicted
    out = out or store.workspace / "plots" / sweep_id
    stem = out / figure
    paths = draw(analysis, stem, title or f"{cfg.name} ({sum(r['status'] == 'completed' for r in table)}"
                                          f"/{len(table)} trials)")
    if figure == "fig3" and analysis.get("axes"):
        paths += onsets(analysis, out / "fig3-onsets", f"{title or cfg.name}: σ_onset per curve")
    write_csv(analysis["summary"], stem.with_suffix(".csv"))
    write_csv([{k: v for k, v in r.items() if k != "error"} | {"error": (r["error"] or "").splitlines()[-1:]}
               for r in table], out / f"{figure}-trials.csv")
    extra = {k: v for k, v in analysis.items() if k != "summary"}
    (out / f"{figure}.json").write_text(json.dumps({"sweep": sweep_id, **extra}, indent=1, default=str) + "\n")
    return analysis, [*paths, stem.with_suffix(".csv"), out / f"{figure}-trials.csv", out / f"{figure}.json"]


def _command(figure: str):
    def command(
        sweep: Annotated[str, typer.Argument(help="sweep id (or prefix) in the store, or the sweep file")],
        out: Annotated[Path | None, typer.Option(help="folder for the files (default <workspace>/plots/<id>)")] = None,
        workspace: Annotated[str | None, typer.Option(help="folder of the run store")] = None,
        title: Annotated[str, typer.Option(help="figure title")] = "",
        trials: Annotated[Path | None, typer.Option(help="re-analyse this trials CSV; SWEEP names its sweep file")]
        = None,
        predicted: Annotated[list[str] | None, typer.Option(
            help="fig3: mark a predicted onset, DATASET=SIGMA (from hil diagnose); repeat per dataset")] = None,
        target: Annotated[float | None, typer.Option(
            help="fig4: sigma_max(N) at this mean accuracy instead of the sweep file's target_acc")] = None,
    ) -> None:
        marks = {}
        for item in predicted or []:
            ds, sep, value = item.partition("=")
            try:
                marks[ds] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise UserError(f"--predicted {item!r}: expected DATASET=SIGMA, e.g. mnist=3e-4")
        with Store(workspace) as store:
            analysis, paths = make_figure(figure, sweep, store, out, title, trials, marks, target)
        _print_findings(figure, analysis)
        for p in paths:
            console.print(f"wrote {p}", highlight=False)

    command.__doc__ = {
        "fig3": "Fig. 3: accuracy vs sigma per dataset, sigma_onset and sigma_collapse, converged fraction.",
        "fig4": "Fig. 4: accuracy vs sigma per N, sigma_max(N) and its log-log slope (theory 1/2).",
        "fig5": "Fig. 5: converged fraction over beta x eta_eff per sigma, default tile marked.",
    }[figure]
    return command


def _print_findings(figure: str, a: dict[str, Any]) -> None:
    if figure == "fig3":
        for ds, v in a["stages"].items():
            console.print(f"{ds}: plateau {v['plateau_acc']:.3f}; sigma_onset {_ci(v, 'sigma_onset', 'onset_how')}; "
                          f"sigma_collapse {_ci(v, 'sigma_collapse', 'collapse_how')}; shoulder "
                          + ("-" if v["shoulder_acc"] is None else f"{v['shoulder_acc']:.3f}"), highlight=False)
            d = (a.get("diagnosed_onset") or {}).get(ds)
            if d:
                ci = d["ci"]
                band = f" [{ci['lo']:.3g}, {ci['hi']:.3g}]" if ci.get("lo") is not None else ""
                console.print(f"  predicted from the EP signal at sigma {d['from_sigma']:g} ({d['signal_v']:.3g} V, "
                              f"SNR_crit {d['snr_crit']:g}): {d['sigma_onset']:.3g} V{band}", highlight=False)
        for k, r in a["ratios"].items():
            ci = r["ci"]
            band = f" [{ci['lo']:.3g}, {ci['hi']:.3g}]" if ci["lo"] is not None else ""
            console.print(f"ratio {k}: {r['ratio']:.3g}{band}", highlight=False)
    elif figure == "fig4":
        for n, v in a["sigma_max"].items():
            sm = f"{v['sigma_max']:.3g} V" if v["sigma_max"] else "-"
            console.print(f"N={n}: sigma_max {sm} ({v['how']})", highlight=False)
        f = a["fit"]
        if f["slope"] is not None:
            se = f"{f['stderr']:.3f}" if f["stderr"] is not None else "n/a"
            bs = f"{f['bootstrap_std']:.3f}" if f["bootstrap_std"] is not None else "n/a"
            band = (f", 95 % [{f['bootstrap_lo']:.3f}, {f['bootstrap_hi']:.3f}]"
                    if f.get("bootstrap_lo") is not None else "")
            console.print(f"log-log slope {f['slope']:.3f} ± {se} (fit s.e.), ± {bs} (bootstrap over seeds{band}, "
                          f"{f['bootstrap_n']} replicates with a slope); theory 0.5", highlight=False)
    elif figure == "fig5":
        for r in a["summary"]:
            console.print(f"sigma {r['sigma']:g} beta {r['beta']:g} eta_eff {r['eta_eff']:g}: "
                          f"converged {100 * r['frac_converged']:.0f} % mean acc {r['mean_acc']:.3f}",
                          highlight=False)


def _ci(v: dict[str, Any], key: str, how: str) -> str:
    """`3.1e-04 V [2.5e-04, 4.0e-04]` (95 % bootstrap over seeds), or how the crossing failed."""
    if v[how] != "interpolated":
        return f"- ({v[how]})" if v[key] is None else f">= {v[key]:.3g} V ({v[how]})"
    ci = v.get(f"{key}_ci") or {}
    band = f" [{ci['lo']:.3g}, {ci['hi']:.3g}]" if ci.get("lo") is not None else ""
    return f"{v[key]:.3g} V{band}"


for _fig in FIGURE_NAMES:
    plot_app.command(_fig)(_command(_fig))


@plot_app.command("curve")
def curve_command(
    run: Annotated[str, typer.Argument(help="run id (or prefix)")],
    out: Annotated[Path | None, typer.Option(help="PNG path (default <workspace>/plots/<run>/curve.png)")] = None,
    workspace: Annotated[str | None, typer.Option(help="folder of the run store")] = None,
) -> None:
    """A training run's train and test error per epoch."""
    from hil.plots import learning_curve

    with Store(workspace) as store:
        r = store.run(run)
        epochs = store.epochs(r["id"])
        if not epochs:
            raise UserError(f"run {r['id']} has no finished epoch")
        path = out or store.workspace / "plots" / r["id"] / "curve.png"
        learning_curve(epochs, r["id"], path)
    console.print(f"wrote {path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(plot_app, name="plot")
