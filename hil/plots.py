"""Figures a person would rather look at than read: learning curves (paper figures live in hil.analysis.sweep_plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402


def learning_curve(epochs: list[dict[str, Any]], title: str, path: Path) -> None:
    """Train and test accuracy (as error, log scale) per epoch."""
    fig, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    xs = [e["epoch"] + 1 for e in epochs]
    ax.plot(xs, [100 * (1 - e["train_acc"]) for e in epochs], "o-", label="train (running, during EP)")
    ax.plot(xs, [100 * (1 - e["test_acc"]) for e in epochs], "s-", label="test")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
