"""`hil`: the command line.  Only this module configures logging and turns errors into exit codes.

Commands that live beside drivers or simulators (which `hil` must not import by
name) register through the `hil.commands` entry-point group: each entry point
is a function `register(app: typer.Typer) -> None`.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.markup import escape

from hil.errors import UserError

console = Console(stderr=True)

app = typer.Typer(
    name="hil",
    help=(
        "Train resistive networks with Equilibrium Propagation in the loop, on a lab board or on its "
        "calibrated software twin.\n\n"
        "Start here: `hil train quickstart` trains a small network on the twin with the MNIST subset "
        "shipped in the package (a few minutes on a laptop). `hil runs list` shows what has run."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_builtin() -> None:
    from hil.commands import bench, characterize, dashboard, data, diagnose, plot, runs, sweep, train

    for module in (train, runs, bench, data, characterize, sweep, plot, diagnose, dashboard):
        module.register(app)


def _register_plugins() -> None:
    """A plug-in that fails to import costs its own commands only, with a warning that names it."""
    for ep in entry_points(group="hil.commands"):
        try:
            register = ep.load()
        except ImportError as exc:
            logging.getLogger(__name__).warning("commands of %s unavailable: %s", ep.value, exc)
            continue
        register(app)


_registered = False

#: optional dependencies and the extra that installs each
_EXTRAS = {"pyvisa": "lab", "pyvisa_py": "lab", "pymeasure": "lab", "dask": "sweep", "distributed": "sweep",
           "allantools": "noise", "pandas": "data", "xarray": "data", "pyarrow": "data", "netCDF4": "data",
           "aiohttp": "dashboard", "plotly": "dashboard"}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `hil` console script: user errors are one line and exit code 2."""
    global _registered
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not _registered:
        _register_builtin()
        _register_plugins()
        _registered = True
    try:
        code = app(args=argv, standalone_mode=False)
    except UserError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        hint = escape(f"this command needs {exc.name}: pip install 'hil-ep[{extra}]'")
        console.print(f"[bold red]error:[/] {hint}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument (exit 2)
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
    if isinstance(code, int) and code:
        sys.exit(code)
