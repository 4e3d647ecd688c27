"""Figures the dashboard computes on the server: a sweep's paper figure and conductance histograms.

The sweep figure is drawn by the very code behind `hil plot fig3|fig4|fig5`
(`hil.analysis.sweep_plots`), so the page shows what the command writes.  Drawing takes
matplotlib a fraction of a second, so the server runs it in a worker thread,
one at a time (pyplot is not thread-safe), and only when the trial count changed.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

_DRAW_LOCK = threading.Lock()


def sweep_figure_png(protocol: str, table: list[dict[str, Any]], cfg: Any, title: str) -> bytes | None:
    """PNG of the protocol's figure over the finished trials; None while no trial has finished."""
    from hil.analysis.sweep_plots import FIGURES
    from hil.sweep import protocol_module

    if not any(r["status"] == "completed" for r in table):
        return None
    draw = next(fn for proto, fn in FIGURES.values() if proto == protocol)
    analysis = protocol_module(protocol).analyze(table, cfg)
    with _DRAW_LOCK, tempfile.TemporaryDirectory(prefix="hil-dash-") as tmp:
        paths = draw(analysis, Path(tmp) / "figure", title)
        return next(p for p in paths if p.suffix == ".png").read_bytes()


def figure_name(protocol: str) -> str:
    from hil.analysis.sweep_plots import FIGURES

    return next(name for name, (proto, _) in FIGURES.items() if proto == protocol)


def conductance_histograms(checkpoint: Path, bins: int = 40) -> dict[str, dict[str, list[float]]]:
    """Histogram of each conductance block in a run's last checkpoint (tensors only: nothing runs on load)."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    out = {}
    for name, value in (state.get("params") or {}).items():
        if value.ndim != 2:  # biases are vectors; blocks are (n_l, n_l+1) matrices
            continue
        g = value.detach().double().numpy().ravel()
        counts, edges = np.histogram(g, bins=bins)
        out[name] = {"edges": edges.tolist(), "counts": counts.tolist(), "mean": float(g.mean()),
                     "min": float(g.min()), "max": float(g.max())}
    return out
