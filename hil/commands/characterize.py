"""`hil characterize` (read noise) and `hil calibrate` (programming): measure, fit, write a calibration.

Both run on whatever `--crossbar` names (`twin`, or a station YAML for a board),
store the run, its summary, the calibration and the figures in the run store,
and write the same files to `--out` (default `<workspace>/runs/<run id>/`):

    calibration.yaml   the twin's calibration format (simulators/README.md)
    summary.txt        what was found, and the N recommendation
    allan.png psd.png histograms.png            (characterize, and calibrate unless --no-read)
    write_noise.png drift.png                   (calibrate)
"""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hil.store import Store, atomic_write_text, code_version
from hil.workspace import save_samples

if TYPE_CHECKING:  # the protocols import torch and scipy: only when a command runs, not for `hil --help`
    from hil.protocols.calibrate import WriteResult
    from hil.protocols.characterize_noise import CharacterizeConfig, ReadNoiseResult

console = Console()

FORMAT_VERSION = 1  # simulators/calibration.py FORMAT_VERSION; checked by tests/characterization


def calibration_yaml(cfg: CharacterizeConfig, run_id: str, source: str, read: ReadNoiseResult | None,
                     write: WriteResult | None) -> str:
    """The calibration file: `version`, `description`, `meta`, `read_noise`, `devices`, as the twin loads it."""
    kind = cfg.crossbar.get("kind", "twin")
    meta: dict[str, Any] = {
        "protocol": "hil calibrate" if write is not None else "hil characterize",
        "run": run_id, "config": source, "crossbar": kind, "station": cfg.crossbar.get("station"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "code_version": code_version(),
    }
    if read is not None:
        meta.update(sample_period_s=read.dt_s, measure_overhead_s=read.overhead_s,
                    recommended_n_samples=read.recommendation.n_samples,
                    recommended_for_target_v=read.recommendation.target_v)
    body = {
        "version": FORMAT_VERSION,
        "description": f"{cfg.name}: measured on {kind}" + (f" ({cfg.crossbar['station']})"
                                                             if "station" in cfg.crossbar else ""),
        "meta": {k: v for k, v in meta.items() if v is not None},
        "read_noise": read.read_noise if read is not None else [],
        "devices": write.devices if write is not None else [],
    }
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=None)


def _corner(c: dict[str, float], dt_s: float) -> str:
    white = 2 * c["white_sigma_v"] ** 2 * dt_s
    return f"{c['pink_amplitude_v'] ** 2 / white:.4g} Hz" if white > 0 else "n/a (no white noise)"


def summary_text(cfg: CharacterizeConfig, run_id: str, read: ReadNoiseResult | None,
                 write: WriteResult | None) -> str:
    lines = [f"{cfg.name} ({run_id}) on {cfg.crossbar.get('kind', 'twin')}"]
    if read is not None:
        c = read.combined
        lines += [
            f"read noise: {len(read.nodes)} nodes x {read.nodes[0].n} reads, sample period {read.dt_s:.4g} s, "
            f"dead time per measure() {read.overhead_s:.3g} s",
            f"  white sigma {c['white_sigma_v']:.4g} V per sample; 1/f amplitude {c['pink_amplitude_v']:.4g} V "
            f"(PSD A^2/f), corner where 1/f = white: {_corner(c, read.dt_s)}",
        ]
        for n in read.nodes:
            tau, adev = n.allan.minimum()
            tel = (f", telegraph {n.telegraph.amplitude_v:.3g} V at {n.telegraph.capture_rate_hz:.3g}/"
                   f"{n.telegraph.emission_rate_hz:.3g} Hz" if n.telegraph.bimodal else "")
            lines.append(f"  node {n.name}: mean {n.mean_v:.6g} V, std {n.std_v:.4g} V, sigma {n.fit.sigma_v:.4g} V "
                         f"(+-{100 * n.fit.sigma_rel_err:.2g} %), A {n.fit.amplitude_v:.4g} V, Allan minimum "
                         f"{adev:.3g} V at {tau:.3g} s{tel}")
        lines.append("recommendation: " + read.recommendation.text())
        r = cfg.recommend
        if r.signal_v is not None:
            lines.append(f"  (target from the SNR rule: hidden EP signal {r.signal_v:.3g} V / (sqrt 2 x SNR "
                         f"{r.snr_target:g}) = {r.noise_target_v():.3g} V; train.adaptive applies the same rule "
                         "online with sigma/sqrt(N))")
        lines += [f"note: {m}" for m in read.notes]
    if write is not None:
        wn, rg, dr, lv = (write.fits[k] for k in ("write_noise", "range", "drift", "levels"))
        lines += [
            f"programming ({write.block}, {write.cells} cells, unverified writes):",
            f"  write noise std(g) = sqrt({wn['sigma_abs']:.4g}^2 + ({wn['sigma_rel']:.4g} g)^2) "
            f"({wn['cells_used']} cells inside the range)",
            f"  range [{rg['g_min']:.4g}, {rg['g_max']:.4g}], device-to-device spread {100 * rg['spread_rel']:.3g} %"
            + ("" if rg["upper_found"] else " (no upper bound found)")
            + (f"; stuck cells: {100 * rg['p_off']:.3g} % at g_min, {100 * rg['p_on']:.3g} % at g_max"
               if rg["p_off"] or rg["p_on"] else ""),
            "  levels: " + (f"{lv['n_levels']}" if lv and lv["n_levels"] else "not resolved (continuous, or "
                            "closer than the write noise)"),
            "  drift: " + (f"nu {dr['nu']:.4g} (spread {dr['nu_spread']:.3g}) after t0 {dr['t0_s']:.3g} s"
                           if dr["nu"] is not None else "none over the hold"),
        ]
        lines += [f"note: {m}" for m in write.notes]
    return "\n".join(lines) + "\n"


def _figures(read: ReadNoiseResult | None, write: WriteResult | None, out: Path) -> list[Path]:
    from hil.analysis import noise_plots

    paths = []
    if read is not None:
        paths += [noise_plots.allan_figure(read.nodes, read.recommendation, out / "allan.png"),
                  noise_plots.psd_figure(read.nodes, out / "psd.png"),
                  noise_plots.histogram_figure(read.nodes, out / "histograms.png")]
    if write is not None:
        cal = {**write.arrays, **{k: write.fits["write_noise"][k] for k in ("sigma_abs", "sigma_rel")},
               "g_min": write.fits["range"]["g_min"], "g_max": write.fits["range"]["g_max"],
               "nu": write.fits["drift"]["nu"], "t0_s": write.fits["drift"]["t0_s"]}
        paths += [noise_plots.write_noise_figure(cal, out / "write_noise.png"),
                  noise_plots.drift_figure(cal, out / "drift.png")]
    return paths


def _run(command: str, config: str | None, sets: list[str], crossbar: str | None, out: str | None,
         workspace: str | None, quiet: bool, do_read: bool, do_write: bool) -> None:
    from hil.protocols.calibrate import calibrate_write
    from hil.protocols.characterize_noise import characterize_read, load_characterize_config, topology_for
    from hil.registry import check_crossbar, open_crossbar
    from hil.runner import Runner, StopRequested

    cfg, raw, source = load_characterize_config(config, sets, crossbar)
    topology = topology_for(cfg, source)
    check_crossbar(cfg.crossbar, source)
    store = Store(workspace)
    kind = cfg.crossbar.get("kind", "twin")
    read = write = None
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, transient=True, disable=quiet)
    with Runner() as runner:
        # the crossbar opens (calibration file, instruments) before a run is created: bad input leaves none
        xbar = runner.attach(open_crossbar(topology, cfg.crossbar, seed=cfg.seed, source=source))
        run_id = store.create_run(cfg.name, raw, kind=command, crossbar=kind)
        out_dir = Path(out) if out else store.run_dir(run_id)
        console.print(f"run [bold]{run_id}[/]  layers {topology.layers}  crossbar {kind}  out {out_dir}",
                      highlight=False)
        try:
            with progress:
                if do_read:
                    task = progress.add_task("reads", total=cfg.read.n_reads)
                    read = characterize_read(xbar, cfg, progress=lambda d, n: progress.update(task, completed=d),
                                             should_stop=runner.checkpoint)
                if do_write:
                    task = progress.add_task("programming", total=4)
                    write = calibrate_write(xbar, cfg, should_stop=runner.checkpoint,
                                            progress=lambda s: progress.update(task, advance=1, description=s))
        except StopRequested as stop:
            store.set_status(run_id, "interrupted")
            console.print(f"{stop}; nothing fitted (run {run_id})")
            sys.exit(stop.exit_code)
        except BaseException:
            store.set_status(run_id, "failed")
            raise
    text = summary_text(cfg, run_id, read, write)
    cal = calibration_yaml(cfg, run_id, source, read, write)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "calibration.yaml", cal)
    atomic_write_text(out_dir / "summary.txt", text)
    figures = _figures(read, write, out_dir)
    summary = {"read": read.summary() if read else None, "write": write.summary() if write else None,
               "calibration": str(out_dir / "calibration.yaml")}
    if read is not None and read.raw is not None:  # for hil.open_workspace(...).samples(run) and the dashboard
        save_samples(store.run_dir(run_id), *read.raw)
    store.put_artifact(run_id, "summary", "json", summary)
    store.put_artifact(run_id, "calibration.yaml", "yaml", cal)
    store.put_artifact(run_id, "summary.txt", "text", text)
    if write is not None:
        store.put_artifact(run_id, "write_arrays", "json", write.arrays)
    for path in figures:
        store.put_artifact(run_id, path.name, "png-base64", base64.b64encode(path.read_bytes()).decode())
    final = {"calibration": str(out_dir / "calibration.yaml")}
    if read is not None:
        final.update(white_sigma_v=read.combined["white_sigma_v"], pink_amplitude_v=read.combined["pink_amplitude_v"],
                     recommended_n=read.recommendation.n_samples)
    if write is not None:
        final.update({k: write.fits["write_noise"][k] for k in ("sigma_abs", "sigma_rel")})
        final.update({k: write.fits["range"][k] for k in ("g_min", "g_max")})
    store.set_status(run_id, "completed", final)
    console.print(text, highlight=False, end="")
    console.print(f"calibration: {out_dir / 'calibration.yaml'}  (twin: crossbar.calibration: <that path>, "
                  f"crossbar.sigma: 0)", highlight=False)


_Config = Annotated[str | None, typer.Option(
    "--config", help="config YAML, or a shipped name: twin (the default with the twin)")]
_Set = Annotated[list[str] | None, typer.Option("--set", help="override a key: --set crossbar.sigma=2e-4")]
_Crossbar = Annotated[str | None, typer.Option(help="twin, or a station YAML to measure a board")]
_Out = Annotated[str | None, typer.Option(help="folder for calibration.yaml, summary.txt and figures")]
_Workspace = Annotated[str | None, typer.Option(help="folder of the run store (default ./hil-runs or HIL_WORKSPACE)")]
_Quiet = Annotated[bool, typer.Option(help="no progress bar")]


def characterize_command(config: _Config = None, set_: _Set = None, crossbar: _Crossbar = None, out: _Out = None,
                         workspace: _Workspace = None, quiet: _Quiet = False) -> None:
    """Read chosen nodes at fixed inputs many times: Allan deviation, PSD, white + 1/f fit, N to use."""
    _run("characterize", config, set_ or [], crossbar, out, workspace, quiet, do_read=True, do_write=False)


def calibrate_command(config: _Config = None, set_: _Set = None, crossbar: _Crossbar = None, out: _Out = None,
                      workspace: _Workspace = None, quiet: _Quiet = False,
                      read: Annotated[bool, typer.Option(help="also characterize read noise")] = True) -> None:
    """Program a grid of conductances repeatedly: write noise vs g, range, levels, drift; a full calibration."""
    _run("calibrate", config, set_ or [], crossbar, out, workspace, quiet, do_read=read, do_write=True)


def register(app: typer.Typer) -> None:
    app.command("characterize")(characterize_command)
    app.command("calibrate")(calibrate_command)
