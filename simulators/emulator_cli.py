"""`hil emulate STATION.yaml`: serve a station's instruments on loopback sockets, backed by the twin.

Registered through the `hil.commands` entry point (`register(app)`), so that `hil`
never imports `hil.simulators` by name.  Prints every instrument's address and a
station file for `LabCrossbar` (`hil train CONFIG --station emulated.yaml`), then
serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


def _twin_spec(config: Path | None, sigma: float | None, seed: int | None) -> tuple[dict[str, Any], int]:
    from hil.config import load_config
    from hil.errors import ConfigError

    spec: dict[str, Any] = {}
    run_seed = 0
    if config is not None:
        cfg, _ = load_config(str(config))
        if cfg.crossbar.get("kind", "twin") != "twin":
            raise ConfigError(f"{config}: crossbar.kind: the emulator takes its physics from a twin section "
                              f"(kind: twin), got {cfg.crossbar.get('kind')!r}")
        spec = dict(cfg.crossbar)
        run_seed = cfg.seed
    if sigma is not None:
        spec["sigma"] = sigma
    return spec, run_seed if seed is None else seed


def parse_fault(text: str) -> tuple[str, str, dict[str, Any]]:
    """`daq:delay:on=READ,after=5,delay_s=3` -> ("daq", "delay", {"on": "READ", "after": 5, "delay_s": 3.0})."""
    from hil.errors import UserError

    parts = text.split(":", 2)
    if len(parts) < 2:
        raise UserError(f"--fault {text!r}: expected INSTRUMENT:KIND[:key=value,...]")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (parts[2] if len(parts) > 2 else "").split(",")):
        key, _, value = item.partition("=")
        if key in ("after", "times"):
            kwargs[key] = int(value)
        elif key in ("delay_s", "boot_s"):
            kwargs[key] = float(value)
        elif key == "on":
            kwargs[key] = value
        elif key == "code":
            kwargs["error"] = (int(value), "Injected error")
        else:
            raise UserError(f"--fault {text!r}: unknown key {key!r} (on, after, times, delay_s, boot_s, code)")
    return parts[0], parts[1], kwargs


def register(app: typer.Typer) -> None:
    """Add the `emulate` command to the `hil` application."""

    @app.command("emulate")
    def emulate(
        station: Annotated[Path, typer.Argument(help="station file (YAML) whose instruments to emulate")],
        config: Annotated[
            Path | None, typer.Option(help="run config whose twin section (noise, seed) gives the physics")
        ] = None,
        sigma: Annotated[float | None, typer.Option(help="white read noise per sample (V, twin units)")] = None,
        seed: Annotated[int | None, typer.Option(help="noise seed (default: the config's seed, else 0)")] = None,
        out: Annotated[
            Path | None, typer.Option(help="write the loopback station file here (default: print it)")
        ] = None,
        base_port: Annotated[
            int, typer.Option(help="first TCP port (one per instrument, in station order); 0: any free ports")
        ] = 0,
        duration_s: Annotated[float, typer.Option(help="stop after this many seconds (0: until Ctrl-C)")] = 0.0,
        fault: Annotated[
            list[str] | None,
            typer.Option(help="inject a fault: INSTRUMENT:KIND[:key=value,...], e.g. daq:delay:on=READ,after=5,"
                              "delay_s=3 (kinds: drop, delay, garble, truncate, error, trip, reboot)"),
        ] = None,
    ) -> None:
        """Serve a station's instruments (SMUs, DAQs, switch matrix, conductance board) on 127.0.0.1."""
        from hil.errors import UserError
        from hil.simulators.emulator import Emulator
        from hil.station import load_station

        st = load_station(station)
        spec, run_seed = _twin_spec(config, sigma, seed)
        ports = {name: base_port + i for i, name in enumerate(st.instruments)} if base_port else None
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            with Emulator(st, spec, seed=run_seed, ports=ports) as emu:
                for text in fault or []:
                    inst, kind, kwargs = parse_fault(text)
                    try:
                        emu.inject(inst, kind, **kwargs)
                    except (KeyError, ValueError) as exc:
                        raise UserError(f"--fault {text!r}: {exc}") from None
                    typer.echo(f"fault: {text}")
                typer.echo(f"emulating station {st.name!r} ({station}) on 127.0.0.1, twin {spec or 'ideal'}, "
                           f"seed {run_seed}")
                for name, addr in emu.addresses.items():
                    typer.echo(f"  {name:10s} {st.instruments[name].kind:18s} {addr}")
                if out is not None:
                    emu.write_station(out)
                    typer.echo(f"station file for LabCrossbar: {out}  (hil train CONFIG --station {out})")
                else:
                    typer.echo("station file for LabCrossbar:")
                    typer.echo(emu.station_yaml())
                typer.echo("serving; Ctrl-C stops", err=True)
                # short waits: a signal may land on a server thread, and only the main thread runs handlers
                end = time.monotonic() + duration_s if duration_s > 0 else float("inf")
                while not stop.wait(0.2) and time.monotonic() < end:
                    pass
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
