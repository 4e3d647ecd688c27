"""`hil bench`: speed of the twin as ratios to this machine's own matmul, measured in the same run."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)

_LABELS = {
    "matmul_b32_gflops": "float32 matmul (32x1568)@(1568x1024), GFLOP/s",
    "matmul_b4_gflops": "float32 matmul (4x1568)@(1568x1024), GFLOP/s",
    "train_b4_samples_per_s": "EP training 1568-1024-10, batch 4, samples/s (crossbar.layout: row)",
    "train_b4_roofline_fraction": "  as a fraction of the batch-4 matmul roofline",
    "train_b4_column_samples_per_s": "EP training, batch 4, samples/s (crossbar.layout: column)",
    "train_b4_column_roofline_fraction": "  as a fraction of the batch-4 matmul roofline",
    "train_b32_samples_per_s": "EP training 1568-1024-10, batch 32, samples/s (crossbar.layout: row)",
    "train_b32_roofline_fraction": "  as a fraction of the batch-32 matmul roofline",
    "train_b32_column_samples_per_s": "EP training, batch 32, samples/s (crossbar.layout: column)",
    "train_b32_column_roofline_fraction": "  as a fraction of the batch-32 matmul roofline",
    "infer_b256_samples_per_s": "inference (free phase), batch 256, samples/s",
    "peak_rss_mb": "peak resident memory, MB",
}


def bench_command(
    seconds: Annotated[float, typer.Option(help="seconds per measurement")] = 3.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="also print every figure as one JSON object (last line)")
    ] = False,
) -> None:
    """Measure training and inference throughput of the twin and the machine's matmul roofline."""
    from hil import bench

    with console.status("benchmarking") as status:
        figures = bench.run(seconds, progress=lambda msg: status.update(f"benchmarking: {msg}"))
    table = Table("figure", "value", title=f"hil bench ({figures['torch_threads']} torch threads)")
    for key, label in _LABELS.items():
        table.add_row(label, f"{figures[key]:,.3f}" if figures[key] < 10 else f"{figures[key]:,.0f}")
    for key, value in figures.items():
        if key not in _LABELS and isinstance(value, float):
            table.add_row(key, f"{value:,.4g}")
    console.print(table)
    for key, value in figures.items():
        if key.endswith("_skipped"):
            console.print(f"{key[: -len('_skipped')]}: not measured ({value})", highlight=False)
    if as_json:
        print(json.dumps(figures))


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
