"""`hil dashboard`: serve the live dashboard of a workspace (needs the `dashboard` extra)."""

from __future__ import annotations

import asyncio
import socket
from typing import Annotated

import typer
from rich.console import Console

from hil.workspace import open_workspace

console = Console(soft_wrap=True)


def dashboard_command(
    workspace: Annotated[str | None, typer.Option(help="folder of the run store (default ./hil-runs)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on; anything but loopback needs the token")] = (
        "127.0.0.1"),
    port: Annotated[int, typer.Option(help="TCP port (0: any free one)")] = 8765,
) -> None:
    """Watch runs and sweeps live in a browser, and stop them (as Ctrl-C would); Ctrl-C ends the server."""
    from hil.dashboard.server import create_app, is_loopback, serve

    with open_workspace(workspace) as found:  # a folder without a run store is an error; nothing is created
        ws = str(found.path)
    app = create_app(ws, host=host)

    def ready(bound: int) -> None:
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
        url = f"http://{shown}:{bound}/"
        if is_loopback(host):
            console.print(f"dashboard of {ws}: {url}  (Ctrl-C to stop the server)", highlight=False)
        else:
            console.print(f"dashboard of {ws} on {host}:{bound}: {url}?token={app['token']}\n"
                          f"token: {app['token']}  (every request needs it; Ctrl-C to stop the server)",
                          highlight=False)

    try:
        asyncio.run(serve(app, host, port, ready))
    except KeyboardInterrupt:
        console.print("dashboard stopped")


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard_command)
