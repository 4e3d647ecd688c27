"""`hil data`: check that a data root holds readable IDX files."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hil.datasets import DATASETS, EMBEDDED, load

console = Console(soft_wrap=True)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)


@data_app.command("check")
def check(
    data_dir: Annotated[
        str | None, typer.Option(help="data root (or HIL_DATA_DIR); 'embedded' for the shipped subset")
    ] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="datasets to check (default: all found)")] = None,
) -> None:
    """Read every split of each dataset and report sizes and the training-pixel mean."""
    names = dataset or (["mnist"] if data_dir == EMBEDDED else list(DATASETS))
    table = Table("dataset", "train", "test", "pixel mean", "status")
    for name in names:
        try:
            train, test = load(name, data_dir)
        except Exception as exc:  # report every dataset, not just the first failure
            if dataset:
                raise
            table.add_row(name, "-", "-", "-", str(exc))
            continue
        mean = float(train.images.float().mean() / 255)
        table.add_row(name, str(len(train)), str(len(test)), f"{mean:.4f}", "ok")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
