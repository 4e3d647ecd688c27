"""Throughput of the twin measured against this machine's own matmul speed, in one run.

Numbers are printed, never asserted: wall-clock speed depends on the machine
and on what else runs on it, so every figure comes with its ratio to a
reference measured right then.  The matmul and the training step it is the
roofline of are timed in alternating short windows and the best window of each
is kept, so a shared machine's load (other processes taking the cores for a
while) does not land on one side of the ratio only.  Useful work per training
sample is counted as 2 phases x 2 n_in n_h (the x @ G1 products) + 2 n_in n_h
(the G1 update).  Training is timed with each `crossbar.layout`: `row` (the
default, bit for bit the reference runs) and `column` (the blocks held column by
column: faster BLAS paths for `x @ G1`, the update and the column sums, other
float32 roundings; simulators/blocks.py).  The roofline is the row-major matmul
`(B x 1568) @ (1568 x 1024)` as the issue defines it; the column layout's own
product runs faster than it at batch 4, so its fraction can pass 1 in principle.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import torch

from hil.datasets import load_embedded, one_hot, to_voltages
from hil.ep import EPController, initial_conductances
from hil.interface import Topology
from hil.registry import open_crossbar

LAYERS = (1568, 1024, 10)


def _rate(fn: Callable[[], int], seconds: float, warmup: int = 3) -> float:
    """Items per second of `fn` (which returns how many items it did), timed over about `seconds`."""
    for _ in range(warmup):
        fn()
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        done += fn()
    return done / elapsed


def best_rates(fns: dict[str, Callable[[], int]], seconds: float, windows: int = 8) -> dict[str, float]:
    """Best items per second of each fn over `windows` windows taken in turn, `seconds` in all per fn."""
    best = dict.fromkeys(fns, 0.0)
    for fn in fns.values():
        _rate(fn, 0.0)  # warm-up only
    for _ in range(windows):
        for name, fn in fns.items():
            best[name] = max(best[name], _rate(fn, seconds / windows, warmup=0))
    return best


def _matmul(batch: int) -> Callable[[], int]:
    a = torch.randn(batch, LAYERS[0])
    b = torch.rand(LAYERS[0], LAYERS[1])
    out = torch.empty(batch, LAYERS[1])

    def once() -> int:
        torch.mm(a, b, out=out)
        return 1

    return once


def _controller(layout: str = "row") -> tuple[EPController, torch.Tensor, torch.Tensor]:
    topology = Topology(LAYERS)
    xbar = open_crossbar(topology, {"kind": "twin", "layout": layout}, seed=0, source="hil bench")
    xbar.program(initial_conductances(topology, [1.0, 1.0], torch.Generator().manual_seed(0)))
    ctl = EPController(xbar, beta=1.0, centered=True, n_samples=1, eta_w=[0.006] * 2, eta_b=[0.006] * 2)
    train, _ = load_embedded()
    return ctl, to_voltages(train.images, 480.0), train.labels


def _train(batch: int, layout: str = "row") -> Callable[[], int]:
    ctl, x, labels = _controller(layout)
    targets = one_hot(labels, 10)
    pos = [0]

    def once() -> int:
        i = pos[0] % (len(labels) - batch)
        pos[0] += batch
        ctl.step(x[i : i + batch], targets[i : i + batch], labels[i : i + batch])
        return batch

    return once


def infer_rate(batch: int, seconds: float) -> float:
    ctl, x, _ = _controller()
    pos = [0]

    def once() -> int:
        i = pos[0] % (len(x) - batch)
        pos[0] += batch
        ctl.crossbar.measure(x[i : i + batch])
        return batch

    return _rate(once, seconds)


def run(seconds: float = 3.0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every figure of `hil bench`, as one flat dict."""
    say = progress or (lambda _msg: None)
    useful = 3 * 2 * LAYERS[0] * LAYERS[1]
    out: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "layers": list(LAYERS)}
    for batch in (4, 32):
        say(f"matmul and training, batch {batch}")
        fns = {"matmul": _matmul(batch), "train": _train(batch), "train_column": _train(batch, "column")}
        rates = best_rates(fns, seconds)
        out[f"matmul_b{batch}_gflops"] = rates["matmul"] * 2 * batch * LAYERS[0] * LAYERS[1] / 1e9
        for mode in ("train", "train_column"):
            key = mode.replace("train", f"train_b{batch}")
            sps = out[f"{key}_samples_per_s"] = rates[mode]
            out[f"{key}_gflops_useful"] = sps * useful / 1e9
            out[f"{key}_roofline_fraction"] = sps * useful / 1e9 / out[f"matmul_b{batch}_gflops"]
    say("inference, batch 256")
    out["infer_b256_samples_per_s"] = infer_rate(256, seconds)
    for ep in entry_points(group="hil.benches"):
        say(ep.name)
        try:
            out.update(ep.load()(seconds))
        except ModuleNotFoundError as exc:  # a bench of an extra that is not installed
            out[f"{ep.name}_skipped"] = f"needs {exc.name}"
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out
