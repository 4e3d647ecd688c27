"""`hil data`: check that a data root holds readable IDX files."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hil.errors import DataError

console = Console(soft_wrap=True)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)


@data_app.command("check")
def check(
    data_dir: Annotated[
        str | None, typer.Option(help="data root (or HIL_DATA_DIR); 'embedded' for the shipped subset")
    ] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="datasets to check (default: all found)")] = None,
) -> None:
    """Read every split of each dataset and report sizes and the training-pixel mean.

    A data root that is missing is an error; so is a dataset that is asked for, or whose folder
    exists, but cannot be read (exit 2, after the table).
    """
    from pathlib import Path

    from hil.datasets import DATASETS, EMBEDDED, data_root, load

    root = data_root(data_dir)
    if root != EMBEDDED and not Path(root).expanduser().is_dir():
        raise DataError(f"{root}: data root is not a directory")
    names = dataset or (["mnist"] if root == EMBEDDED else list(DATASETS))
    table = Table("dataset", "train", "test", "pixel mean", "status")
    broken, readable = [], 0
    for name in names:
        try:
            train, test = load(name, root)
        except DataError as exc:  # report every dataset, not just the first failure
            absent = root != EMBEDDED and not (Path(root).expanduser() / name).exists()
            if dataset or not absent:
                broken.append(name)
            table.add_row(name, "-", "-", "-", "absent" if absent and not dataset else str(exc))
            continue
        mean = float(train.images.float().mean() / 255)
        table.add_row(name, str(len(train)), str(len(test)), f"{mean:.4f}", "ok")
        readable += 1
    console.print(table)
    if broken or not readable:
        raise DataError(f"{root}: cannot read {', '.join(broken) or 'any dataset'} (see the table above)")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
