"""`hil`: the command line.  Only this module configures logging and turns errors into exit codes.

Commands that live beside drivers or simulators (which `hil` must not import by
name) register through the `hil.commands` entry-point group: each entry point
is a function `register(app: typer.Typer) -> None`.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from importlib.metadata import entry_points
from typing import Any, get_args

import typer
import typer.main
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


#: what help shows for a value, by Python type, instead of typer's `<list[str]>`, `<bool>`
_METAVARS = {str: "TEXT", int: "INTEGER", float: "NUMBER", bool: ""}


def _plain_metavars(command: Any) -> None:
    """Give every parameter of the command tree a plain metavar (TEXT, INTEGER, PATH), never a Python type."""
    help_option = command.get_help_option(command.context_class(command))
    for param in [*getattr(command, "params", []), *([help_option] if help_option else [])]:
        desc = getattr(param, "type_descriptor", None)
        if desc is None or param.metavar is not None or desc.is_choice:
            continue
        annotation = get_args(desc.annotation)[0] if desc.is_list and get_args(desc.annotation) else desc.annotation
        plain = "PATH" if desc.is_path else _METAVARS.get(annotation, "VALUE")
        if param.opts[0].startswith("-"):
            param.metavar = plain
        else:  # an argument's metavar would replace its name; its type column is asked for apart
            param.display_type_rich = lambda ctx, plain=plain: plain
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def _error(text: str) -> None:
    """The one line a user error gets on stderr."""
    console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `hil` console script: user errors are one line and exit code 2."""
    global _registered
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not _registered:
        _register_builtin()
        _register_plugins()
        _registered = True
    command = typer.main.get_command(app)
    _plain_metavars(command)
    try:
        code = command.main(args=argv, prog_name="hil", standalone_mode=False)
    except UserError as exc:
        _error(str(exc))
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        _error(f"this command needs {exc.name}: pip install 'hil-ep[{extra}]'")
        sys.exit(2)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument, value out of range
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        _error(" ".join(exc.format_message().split()) + hint)
        sys.exit(getattr(exc, "exit_code", 2))
    except sqlite3.DatabaseError as exc:  # met while reading rows: the store names itself where it can
        _error(f"run store unusable: {exc}")
        sys.exit(2)
    if isinstance(code, int) and code:
        sys.exit(code)
