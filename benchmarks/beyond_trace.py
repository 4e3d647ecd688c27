"""Training traces of docs/results/beyond: why slow read noise trains worse than its update noise predicts.

A trace is one noise-types trial re-run with a recorder around the noisy crossbar
(it passes every call through unchanged, so the run is the stored trial, bit for
bit) and an ideal twin beside it.  Per batch, on the network *as it is at that
batch* (the conductances the update was measured on):

- the noisy EP gradient estimate g (from the two nudged reads the update used) and
  the exact one g0 (the same batch on the ideal twin): their cosine, and the error
  e = g - g0 split into its component along g0 (`along = <e, g0> / |g0|^2`: a mean
  below 0 shrinks the steps, above 0 lengthens them; 0 for an unbiased estimate)
  and its size `|e| / |g0|`, per block and over all parameters;

and every `every` batches: the clean test accuracy (the conductances scored on the
ideal twin), the fraction of each block's conductances at `g_min` (pinned by the
clip), and the rms of the biases.

    python benchmarks/beyond.py trace --out docs/results/beyond --seeds 1
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from hil.ep import ep_gradient
from hil.interface import Measurement, Nudge
from hil.protocols.train import TrainData, TrainHooks, train
from hil.simulators.twin import TwinConfig, TwinCrossbar

#: the trials traced: the two slow-noise points of the brief and white at the same single-read std, both ends
TRACED = ("telegraph-centered-N1", "white-centered-N1", "pink-centered-N64", "white-centered-N64")


class Recorder:
    """A crossbar that passes everything through to `inner` and keeps the last batch's three measurements."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[torch.Tensor, Nudge | None, Measurement]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def measure(self, inputs: torch.Tensor, **kw: Any) -> Measurement:
        m = self.inner.measure(inputs, **kw)
        self.calls.append((inputs, kw.get("nudge"), m))
        del self.calls[:-3]
        return m


def _flat(g: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([g[k].double().reshape(-1) for k in names])


def _compare(noisy: dict[str, torch.Tensor], exact: dict[str, torch.Tensor], groups: dict[str, list[str]]):
    """Cosine, error along the exact gradient (relative) and relative error size, per group of parameters."""
    out = {}
    for name, keys in groups.items():
        g, g0 = _flat(noisy, keys), _flat(exact, keys)
        n0 = float(g0.norm())
        e = g - g0
        out[name] = (float(g @ g0) / max(float(g.norm()) * n0, 1e-300), float(e @ g0) / max(n0**2, 1e-300),
                     float(e.norm()) / max(n0, 1e-300))
    return out


class TraceHooks(TrainHooks):
    """Per-batch gradient comparison and every-`every`-batches snapshots of a run (see the module docstring)."""

    def __init__(self, xbar: Recorder, data: TrainData, beta: float, every: int = 25, n_test: int = 1000) -> None:
        super().__init__()
        self.xbar, self.data, self.beta, self.every, self.n_test = xbar, data, beta, every, n_test
        topo = xbar.topology
        self.ideal = TwinCrossbar(topo, TwinConfig(ideal=True), seed=0)
        self.groups = {"G1": ["G1"], "G2": ["G2"], "all": list(topo.parameter_shapes())}
        self.g_prev: dict[str, torch.Tensor] | None = None
        self.batches: list[dict[str, Any]] = []
        self.points: list[dict[str, Any]] = []

    def start(self, total_batches: int, done_batches: int, epoch: int) -> None:
        self.g_prev = self.xbar.read_conductances()
        self._snapshot(epoch, done_batches)

    def _snapshot(self, epoch: int, batch: int) -> None:
        g = self.g_prev
        assert g is not None
        self.ideal.program(g)
        x = self.data.inputs(self.data.test.images[: self.n_test])
        m = self.ideal.measure(x)
        acc = float((self.data.readout.predict(m.output) == self.data.test.labels[: self.n_test]).double().mean())
        topo = self.xbar.topology
        point = {"epoch": epoch, "batch": batch, "clean_test_acc": acc}
        for name in topo.blocks:
            point[f"at_gmin_{name}"] = float((g[name] <= topo.g_min).double().mean())
            point[f"mean_{name}"] = float(g[name].double().mean())
        for name in topo.biases:
            point[f"rms_{name}"] = float(g[name].double().pow(2).mean().sqrt())
        self.points.append(point)

    def batch(self, row: dict[str, Any], running_acc: float, samples_per_s: float) -> None:
        (x, _, _), (_, lo, s1), (_, hi, s2) = self.xbar.calls
        assert lo is not None and hi is not None and self.g_prev is not None
        topo = self.xbar.topology
        self.ideal.program(self.g_prev)
        e1, e2 = (self.ideal.measure(x, nudge=n) for n in (lo, hi))
        dbeta = hi.beta - lo.beta
        noisy = ep_gradient(x, s1.voltages, s2.voltages, dbeta, topo)
        exact = ep_gradient(x, e1.voltages, e2.voltages, dbeta, topo)
        rec = {"batch": row["batch"], "epoch": row["epoch"], "correct": row["correct"], "loss": row["loss"],
               "clipped": row["clipped"]}
        for name, (cos, along, size) in _compare(noisy, exact, self.groups).items():
            rec.update({f"cos_{name}": cos, f"along_{name}": along, f"err_{name}": size})
        self.batches.append(rec)
        self.g_prev = self.xbar.read_conductances()
        if (row["batch"] + 1) % self.every == 0:
            self._snapshot(row["epoch"], row["batch"] + 1)


def run_trace(cfg: Any, data: TrainData, xbar: Any) -> dict[str, Any]:
    """Train `xbar` per `cfg` with the trace hooks; the trial's usual result plus `trace_points` and `trace_batches`."""
    t0 = time.perf_counter()
    rec = Recorder(xbar)
    hooks = TraceHooks(rec, data, cfg.train.beta)
    epochs = train(rec, cfg, data, hooks)
    rows = [{k: v for k, v in e.items() if k != "pending"} for e in epochs]
    return {"final_test_acc": rows[-1]["test_acc"], "epochs": rows, "wall_s": time.perf_counter() - t0,
            "trace_points": hooks.points, "trace_batches": hooks.batches}


def windows(batches: list[dict[str, Any]], key: str, width: int = 125) -> list[tuple[float, float, float]]:
    """(centre batch, mean, standard error) of `key` over consecutive windows of `width` batches."""
    out = []
    for i in range(0, len(batches) - width + 1, width):
        v = torch.tensor([b[key] for b in batches[i : i + width]], dtype=torch.float64)
        v = v[torch.isfinite(v)]
        out.append((i + width / 2, float(v.mean()), float(v.std() / math.sqrt(len(v)))))
    return out
