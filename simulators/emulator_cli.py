"""`hil emulate STATION.yaml`: serve a station's instruments on loopback sockets, backed by the twin.

Registered through the `hil.commands` entry point (`register(app)`), so that `hil`
never imports `hil.simulators` by name.  Prints every instrument's address and a
station file for `LabCrossbar` (`hil train CONFIG --station emulated.yaml`), then
serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import logging
import math
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


def check_pulse_model(st: Any, station: Path, config: Path | None, has_model: bool) -> None:
    """A station that programs its cells by pulses needs a twin that says what a pulse does (one line, exit 2)."""
    from hil.errors import ConfigError
    from hil.station import PulseProgramming

    if has_model or not isinstance(st.conductances, PulseProgramming):
        return
    example = ("[{kind: range, g_min: 0.01, g_max: 5.0}, {kind: pulse, alpha_set: 0.1, alpha_reset: 0.1, "
               "v_threshold_v: 0.5, v_ref_v: 1.0}]")
    if config is None:
        raise ConfigError(f"{station}: conductances.kind: pulse needs a twin with a 'pulse' device model: give "
                          f"--config RUN.yaml whose crossbar.devices has one, e.g. devices: {example}")
    raise ConfigError(f"{config}: crossbar.devices: {station} programs its cells by pulses (conductances.kind: "
                      f"pulse), so the twin needs a 'pulse' device model, e.g. devices: {example}")


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


def check_options(sigma: float | None, speed: float, line_freq: float, base_port: int, n_ports: int) -> None:
    """Refuse bad numbers before anything listens or is written (one line each, exit 2)."""
    from hil.errors import UserError

    if sigma is not None and not (math.isfinite(sigma) and sigma >= 0):
        raise UserError(f"--sigma {sigma}: expected a finite read-noise level >= 0 (V)")
    if not (math.isfinite(speed) and speed > 0):
        raise UserError(f"--speed {speed}: expected a finite factor > 0 (1: real time)")
    if line_freq not in (50.0, 60.0):
        raise UserError(f"--line-freq {line_freq}: expected 50 or 60 (Hz)")
    if base_port and not 1 <= base_port <= 65536 - n_ports:
        raise UserError(f"--base-port {base_port}: expected 1..{65536 - n_ports} (one TCP port per instrument, "
                        f"{n_ports} here, at most 65535), or 0 for free ports")


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
        speed: Annotated[
            float, typer.Option(help="run the instruments' clock this many times faster than real time (CI)")
        ] = 1.0,
        line_freq: Annotated[float, typer.Option(help="mains frequency the instruments see (Hz): 50 or 60")] = 60.0,
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
        check_options(sigma, speed, line_freq, base_port, len(st.instruments))
        spec, run_seed = _twin_spec(config, sigma, seed)
        ports = {name: base_port + i for i, name in enumerate(st.instruments)} if base_port else None
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            emu = Emulator(st, spec, seed=run_seed, ports=ports, speed=speed, line_hz=line_freq)
            check_pulse_model(st, station, config, emu.world.pulse_model)  # before anything listens
            try:
                emu.start()  # stops what it started when a port is taken
            except OSError as exc:
                raise UserError(f"--base-port {base_port}: {exc.strerror}; choose other ports, or 0 for free ones") \
                    from None
            try:
                for text in fault or []:
                    inst, kind, kwargs = parse_fault(text)
                    try:
                        emu.inject(inst, kind, **kwargs)
                    except (KeyError, ValueError) as exc:
                        raise UserError(f"--fault {text!r}: {exc}") from None
                    typer.echo(f"fault: {text}")
                typer.echo(f"emulating station {st.name!r} ({station}) on 127.0.0.1, twin {spec or 'ideal'}, "
                           f"seed {run_seed}, clock x{speed:g}, mains {line_freq:g} Hz")
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
                emu.stop()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
