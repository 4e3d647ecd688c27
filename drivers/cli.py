"""`hil instruments`: what pyvisa sees, and a check of a station file against the bench.

Registered through the `hil.commands` entry point (`register(app)`), so that `hil`
never imports `hil.drivers` by name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


def register(app: typer.Typer) -> None:
    """Add the `instruments` sub-command group to the `hil` application."""
    group = typer.Typer(
        name="instruments",
        help="Lab instruments: list what pyvisa sees, check a station file against the bench.",
        no_args_is_help=True,
    )

    @group.command("list")
    def list_instruments(
        backend: Annotated[str, typer.Option(help="pyvisa backend: @py (pyvisa-py), @ivi, or FILE.yaml@sim")] = "@py",
        query: Annotated[str, typer.Option(help="VISA resource pattern")] = "?*::INSTR",
    ) -> None:
        """List the VISA resources the backend finds (TCP sockets are never listed: name them in a station)."""
        import warnings

        import pyvisa

        rm = pyvisa.ResourceManager(backend)
        try:
            with warnings.catch_warnings():  # pyvisa-py's notes on optional discovery packages
                warnings.simplefilter("ignore", UserWarning)
                found = rm.list_resources(query)
        finally:
            rm.close()
        if not found:
            typer.echo(f"no VISA resources found with backend {backend} ({query})")
        for name in found:
            typer.echo(name)

    @group.command("check")
    def check(
        station: Annotated[Path, typer.Argument(help="station file (YAML)")],
        read: Annotated[
            bool, typer.Option(help="then one read of every node at 0 V inputs, with the noise seen")
        ] = False,
        samples: Annotated[int, typer.Option(min=1, max=10000, help="reads per node with --read")] = 8,
        max_offset_v: Annotated[
            float, typer.Option(min=0.0, help="with --read: warn about nodes reading more than this at 0 V")
        ] = 0.01,
    ) -> None:
        """Connect to every instrument of a station: *IDN?, error queues, limits, and a dry run of the wiring.

        Nothing is configured or switched on: only queries are sent.  With --read, the station is then
        configured, every input held at 0 V, every node read --samples times (nothing programmed), and
        every source ramped back to 0 V and off.
        """
        from hil.drivers.station_check import check_station

        for line in check_station(station):
            typer.echo(line)
        if read:
            from hil.drivers.bringup import read_check

            lines, warnings = read_check(station, samples, max_offset_v)
            for line in lines:
                typer.echo(line)
            for line in warnings:
                typer.echo(f"warning: {line}", err=True)

    app.add_typer(group, name="instruments")
